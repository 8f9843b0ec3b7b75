use sha2::Digest;
use std::time::Instant;
fn main() {
    for len in [96usize, 700, 1500] {
        let msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        for round in 0..3 {
            let n = 300_000;
            let t = Instant::now();
            let mut x = 0u8;
            for _ in 0..n { let mut h = sha2::Sha512::new(); h.update(&msg[..32]); h.update(&msg[32..64]); h.update(&msg[64..]); x ^= h.finalize()[0]; }
            let a = t.elapsed() / n;
            let t = Instant::now();
            for _ in 0..n { let mut h = ring::digest::Context::new(&ring::digest::SHA512); h.update(&msg[..32]); h.update(&msg[32..64]); h.update(&msg[64..]); x ^= h.finish().as_ref()[0]; }
            let b = t.elapsed() / n;
            println!("len {len} round {round}: sha2 {a:?}, ring {b:?} ({x})");
        }
    }
}
