package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func init() {
	commands["tiles"] = command{
		"PREFIX VKEY: read a C2SP tlog-tiles log (an http(s) URL prefix or a directory) with tlog.TileHashReader, " +
			"check the tree hash against the signed checkpoint and prove records from the entry bundles",
		runTiles,
	}
}

// tileHeight is C2SP tlog-tiles' tile height: 2^8 = 256 hashes per full tile.
const tileHeight = 8

// fetcher reads resources below a log's prefix, over HTTP or from a directory.
type fetcher struct {
	prefix string
	get    func(path string) ([]byte, error)
}

func newFetcher(prefix string) fetcher {
	if strings.HasPrefix(prefix, "http://") || strings.HasPrefix(prefix, "https://") {
		base := strings.TrimSuffix(prefix, "/")
		return fetcher{prefix, func(path string) ([]byte, error) {
			resp, err := http.Get(base + "/" + path)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return nil, err
			}
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
			}
			return body, nil
		}}
	}
	return fetcher{prefix, func(path string) ([]byte, error) {
		return os.ReadFile(filepath.Join(prefix, filepath.FromSlash(path)))
	}}
}

// tilePath is the C2SP path of a tile: tile/<L>/<N>[.p/<W>], or tile/entries/<N>[.p/<W>] for
// L == -1. Go's own Tile.Path is the sumdb layout (tile/<H>/<L>/...), which C2SP does not use.
func tilePath(t tlog.Tile) string {
	level := strconv.Itoa(t.L)
	if t.L == -1 {
		level = "entries"
	}
	n := t.N
	nStr := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		nStr = fmt.Sprintf("x%03d/%s", n%1000, nStr)
	}
	path := "tile/" + level + "/" + nStr
	if t.W != 1<<uint(t.H) {
		path += fmt.Sprintf(".p/%d", t.W)
	}
	return path
}

// tileReader is a tlog.TileReader over C2SP tiles. It keeps what it read in memory (tiles are
// immutable), so each tile is fetched once; TileHashReader still authenticates every use.
type tileReader struct {
	f     fetcher
	cache map[tlog.Tile][]byte
	reads int
}

func (r *tileReader) Height() int { return tileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		if b, ok := r.cache[t]; ok {
			data[i] = b
			continue
		}
		b, err := r.f.get(tilePath(t))
		if err != nil {
			return nil, err
		}
		r.reads++
		r.cache[t] = b
		data[i] = b
	}
	return data, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// readBundle reads entry bundle n of a tree of size, and splits it into its entries
// (big-endian uint16 length-prefixed).
func readBundle(f fetcher, n, size int64) ([][]byte, error) {
	w := size - n*(1<<tileHeight)
	if w > 1<<tileHeight {
		w = 1 << tileHeight
	}
	t := tlog.Tile{H: tileHeight, L: -1, N: n, W: int(w)}
	data, err := f.get(tilePath(t))
	if err != nil {
		return nil, err
	}
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, fmt.Errorf("%s: truncated length prefix", tilePath(t))
		}
		l := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+l {
			return nil, fmt.Errorf("%s: truncated entry", tilePath(t))
		}
		entries = append(entries, data[2:2+l])
		data = data[2+l:]
	}
	if int64(len(entries)) != w {
		return nil, fmt.Errorf("%s holds %d entries, want %d", tilePath(t), len(entries), w)
	}
	return entries, nil
}

func runTiles(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("want PREFIX VKEY, got %d arguments", len(args))
	}
	f := newFetcher(args[0])
	verifier, err := note.NewVerifier(args[1])
	if err != nil {
		return fmt.Errorf("vkey: %w", err)
	}
	msg, err := f.get("checkpoint")
	if err != nil {
		return err
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	// C2SP tlog-checkpoint: origin, size, base64 root hash, then extension lines.
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != verifier.Name() {
		return fmt.Errorf("checkpoint: want origin %q, size and root lines, got %q", verifier.Name(), n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("checkpoint: bad size line %q", lines[1])
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		return fmt.Errorf("checkpoint: bad root line %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], rootBytes)

	tree := tlog.Tree{N: size, Hash: root}
	reader := &tileReader{f: f, cache: map[tlog.Tile][]byte{}}
	hashes := tlog.TileHashReader(tree, reader)
	th, err := tlog.TreeHash(size, hashes)
	if err != nil {
		return fmt.Errorf("tree hash of %d entries from the tiles: %w", size, err)
	}
	if th != root {
		return fmt.Errorf("the tiles hash to %v, the checkpoint says %v", th, root)
	}

	// Every entry of every bundle: its record hash is the level-0 hash the tiles hold, and it
	// is proved in the tree with ProveRecord/CheckRecord. Every record, not a sample: this
	// version of TileHashReader authenticates a full tile against its parent only when the
	// tree hash needed as many tiles as it has subtrees, so a proof checked against the
	// checkpoint's root is what catches a wrong tile.
	proved := 0
	for b := int64(0); b*(1<<tileHeight) < size; b++ {
		entries, err := readBundle(f, b, size)
		if err != nil {
			return err
		}
		for i, entry := range entries {
			index := b*(1<<tileHeight) + int64(i)
			rh := tlog.RecordHash(entry)
			stored, err := hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, index)})
			if err != nil {
				return fmt.Errorf("record %d: %w", index, err)
			}
			if stored[0] != rh {
				return fmt.Errorf("record %d: the bundle's entry hashes to %v, the level-0 tile holds %v", index, rh, stored[0])
			}
			p, err := tlog.ProveRecord(size, index, hashes)
			if err != nil {
				return fmt.Errorf("prove record %d: %w", index, err)
			}
			if err := tlog.CheckRecord(p, size, root, index, rh); err != nil {
				return fmt.Errorf("check record %d: %w", index, err)
			}
			proved++
		}
	}
	fmt.Printf("tree of %d entries verified from %d tile reads; %d records proved\n", size, reader.reads, proved)
	return nil
}
