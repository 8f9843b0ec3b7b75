use std::time::Instant;

fn rnd(state: &mut u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        *state = state.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

fn main() {
    let n: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(32);
    let rounds: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(2000);
    let mut st = 7u64;
    // R points (compressed) and one key, z 128-bit scalars, zh 256-bit.
    let rs: Vec<[u8; 32]> = (0..n)
        .map(|_| (c4::constants::ED25519_BASEPOINT_POINT * c4::Scalar::from_bytes_mod_order(rnd(&mut st))).compress().to_bytes())
        .collect();
    let key = (c4::constants::ED25519_BASEPOINT_POINT * c4::Scalar::from_bytes_mod_order(rnd(&mut st))).compress().to_bytes();
    let zs: Vec<[u8; 32]> = (0..n).map(|_| { let mut b = rnd(&mut st); b[16..].fill(0); b }).collect();
    let big1 = rnd(&mut st);
    let big2 = rnd(&mut st);

    for _ in 0..3 {
        // curve25519-dalek 4.1.3
        {
            use c4::edwards::{CompressedEdwardsY, EdwardsPoint};
            use c4::traits::VartimeMultiscalarMul;
            use c4::Scalar;
            let a = CompressedEdwardsY(key).decompress().unwrap();
            let t = Instant::now();
            let mut sink = 0u8;
            for _ in 0..rounds {
                let pts: Vec<Option<EdwardsPoint>> = std::iter::once(Some(c4::constants::ED25519_BASEPOINT_POINT))
                    .chain(rs.iter().map(|r| CompressedEdwardsY(*r).decompress()))
                    .chain(std::iter::once(Some(a)))
                    .collect();
                let sc: Vec<Scalar> = std::iter::once(Scalar::from_bytes_mod_order(big1))
                    .chain(zs.iter().map(|z| Scalar::from_bytes_mod_order(*z)))
                    .chain(std::iter::once(Scalar::from_bytes_mod_order(big2)))
                    .collect();
                let p = EdwardsPoint::optional_multiscalar_mul(sc, pts).unwrap();
                sink ^= p.compress().to_bytes()[0];
            }
            let per = t.elapsed().as_secs_f64() / rounds as f64 * 1e6;
            // decompression alone
            let t = Instant::now();
            for _ in 0..rounds { for r in &rs { sink ^= CompressedEdwardsY(*r).decompress().unwrap().compress().to_bytes()[1] & 0; } }
            let dec = t.elapsed().as_secs_f64() / rounds as f64 * 1e6;
            println!("c4   n={n}: {per:8.1} us per batch ({:.2} us/sig); decompress+compress {dec:.1} us ({sink})", per / n as f64);
        }
        {
            use c5::edwards::{CompressedEdwardsY, EdwardsPoint};
            use c5::traits::VartimeMultiscalarMul;
            use c5::Scalar;
            let a = CompressedEdwardsY(key).decompress().unwrap();
            let t = Instant::now();
            let mut sink = 0u8;
            for _ in 0..rounds {
                let pts: Vec<Option<EdwardsPoint>> = std::iter::once(Some(c5::constants::ED25519_BASEPOINT_POINT))
                    .chain(rs.iter().map(|r| CompressedEdwardsY(*r).decompress()))
                    .chain(std::iter::once(Some(a)))
                    .collect();
                let sc: Vec<Scalar> = std::iter::once(Scalar::from_bytes_mod_order(big1))
                    .chain(zs.iter().map(|z| Scalar::from_bytes_mod_order(*z)))
                    .chain(std::iter::once(Scalar::from_bytes_mod_order(big2)))
                    .collect();
                let p = EdwardsPoint::optional_multiscalar_mul(sc, pts).unwrap();
                sink ^= p.compress().to_bytes()[0];
            }
            let per = t.elapsed().as_secs_f64() / rounds as f64 * 1e6;
            let t = Instant::now();
            for _ in 0..rounds { for r in &rs { sink ^= CompressedEdwardsY(*r).decompress().unwrap().compress().to_bytes()[1] & 0; } }
            let dec = t.elapsed().as_secs_f64() / rounds as f64 * 1e6;
            println!("c5   n={n}: {per:8.1} us per batch ({:.2} us/sig); decompress+compress {dec:.1} us ({sink})", per / n as f64);
        }
    }
}
