package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func init() {
	commands["inclusion"] = command{"INDEX SIZE ROOT RECORD < PATH: tlog.CheckRecord of a record (base64) in a tree", runInclusion}
	commands["consistency"] = command{"OLD OLDROOT NEW NEWROOT < PATH: tlog.CheckTree (roots base64)", runConsistency}
	commands["proof-file"] = command{"VKEY RECORD < FILE.tlog-proof: a C2SP tlog-proof checked with note.Open and tlog.CheckRecord", runProofFile}
}

func decodeHash(text string) (tlog.Hash, error) {
	var h tlog.Hash
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return h, fmt.Errorf("%q is not base64: %w", text, err)
	}
	if len(raw) != len(h) {
		return h, fmt.Errorf("%q is %d bytes, not %d", text, len(raw), len(h))
	}
	copy(h[:], raw)
	return h, nil
}

// readPath reads one base64 hash per line from r, stopping at EOF or an empty line.
func readPath(r *bufio.Reader) ([]tlog.Hash, error) {
	var path []tlog.Hash
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimSuffix(line, "\n")
		if line != "" {
			h, herr := decodeHash(line)
			if herr != nil {
				return nil, herr
			}
			path = append(path, h)
		}
		if err == io.EOF || (line == "" && err == nil) {
			return path, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func parseInt(text string) (int64, error) {
	return strconv.ParseInt(text, 10, 64)
}

// runInclusion: RECORD is the log's record (the 32-byte entry hash), base64; the leaf hash is
// tlog.RecordHash(record) = SHA-256(0x00 || record), as RFC 6962 defines it.
func runInclusion(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("want INDEX SIZE ROOT RECORD, got %d arguments", len(args))
	}
	index, err := parseInt(args[0])
	if err != nil {
		return err
	}
	size, err := parseInt(args[1])
	if err != nil {
		return err
	}
	root, err := decodeHash(args[2])
	if err != nil {
		return err
	}
	record, err := base64.StdEncoding.DecodeString(args[3])
	if err != nil {
		return err
	}
	path, err := readPath(bufio.NewReader(os.Stdin))
	if err != nil {
		return err
	}
	return tlog.CheckRecord(tlog.RecordProof(path), size, root, index, tlog.RecordHash(record))
}

func runConsistency(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("want OLD OLDROOT NEW NEWROOT, got %d arguments", len(args))
	}
	oldSize, err := parseInt(args[0])
	if err != nil {
		return err
	}
	oldRoot, err := decodeHash(args[1])
	if err != nil {
		return err
	}
	newSize, err := parseInt(args[2])
	if err != nil {
		return err
	}
	newRoot, err := decodeHash(args[3])
	if err != nil {
		return err
	}
	path, err := readPath(bufio.NewReader(os.Stdin))
	if err != nil {
		return err
	}
	return tlog.CheckTree(tlog.TreeProof(path), newSize, newRoot, oldSize, oldRoot)
}

// runProofFile parses a C2SP tlog-proof (c2sp.org/tlog-proof@v1) by the spec's grammar, opens
// its checkpoint with note.Open under VKEY, and checks the inclusion of RECORD (base64) at the
// proof's index with tlog.CheckRecord.
func runProofFile(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("want VKEY RECORD, got %d arguments", len(args))
	}
	verifier, err := note.NewVerifier(args[0])
	if err != nil {
		return fmt.Errorf("vkey: %w", err)
	}
	record, err := base64.StdEncoding.DecodeString(args[1])
	if err != nil {
		return err
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	head, checkpoint, found := bytes.Cut(data, []byte("\n\n"))
	if !found {
		return errors.New("no empty line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return fmt.Errorf("first line %q", lines[0])
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		if _, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[0], "extra ")); err != nil {
			return fmt.Errorf("extra: %w", err)
		}
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return errors.New("no index line")
	}
	index, err := parseInt(strings.TrimPrefix(lines[0], "index "))
	if err != nil {
		return err
	}
	var path []tlog.Hash
	for _, line := range lines[1:] {
		h, err := decodeHash(line)
		if err != nil {
			return err
		}
		path = append(path, h)
	}
	n, err := note.Open(checkpoint, note.VerifierList(verifier))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	text := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(text) < 3 {
		return fmt.Errorf("checkpoint has %d lines", len(text))
	}
	size, err := parseInt(text[1])
	if err != nil {
		return err
	}
	root, err := decodeHash(text[2])
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(tlog.RecordProof(path), size, root, index, tlog.RecordHash(record)); err != nil {
		return err
	}
	fmt.Printf("%s %d %d\n", text[0], size, index)
	return nil
}
