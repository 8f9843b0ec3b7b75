package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

func init() {
	commands["cosig"] = command{
		"LOG_VKEY WITNESS_VKEY... < NOTE: verify a cosigned checkpoint with note.Open (the log's Ed25519 " +
			"signature and C2SP cosignature/v1 witness signatures, type 0x04) and print the verified signers",
		runCosig,
	}
}

// cosigV1Verifier is a note.Verifier for C2SP tlog-cosignature's Ed25519 cosignature/v1: x/mod's
// note package knows only signature type 0x01, so the message reconstruction is ours:
// "cosignature/v1\ntime <timestamp>\n" followed by the note text.
type cosigV1Verifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (v *cosigV1Verifier) Name() string    { return v.name }
func (v *cosigV1Verifier) KeyHash() uint32 { return v.hash }

// Verify checks sig = u64 big-endian timestamp || Ed25519 signature over the cosigned message.
func (v *cosigV1Verifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	timestamp := binary.BigEndian.Uint64(sig[:8])
	if timestamp == 0 || timestamp > 1<<63-1 {
		return false
	}
	signed := "cosignature/v1\ntime " + strconv.FormatUint(timestamp, 10) + "\n" + string(msg)
	return ed25519.Verify(v.key, []byte(signed), sig[8:])
}

// newCosigV1Verifier parses a vkey name+hex(key ID)+base64(0x04 || 32-byte key) and checks
// that the key ID is SHA-256(name || "\n" || 0x04 || key)[:4].
func newCosigV1Verifier(vkey string) (*cosigV1Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("malformed vkey")
	}
	name, idHex, keyB64 := parts[0], parts[1], parts[2]
	id, err := hex.DecodeString(idHex)
	if err != nil || len(id) != 4 {
		return nil, errors.New("malformed key ID")
	}
	raw, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 0x04 {
		return nil, errors.New("not a cosignature/v1 (type 0x04) Ed25519 key")
	}
	digest := sha256.Sum256(append([]byte(name+"\n"), raw...))
	if binary.BigEndian.Uint32(digest[:4]) != binary.BigEndian.Uint32(id) {
		return nil, errors.New("key ID does not match the key")
	}
	return &cosigV1Verifier{name: name, hash: binary.BigEndian.Uint32(id), key: ed25519.PublicKey(raw[1:])}, nil
}

func runCosig(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("want a log vkey and at least one witness vkey, got %d arguments", len(args))
	}
	logVerifier, err := note.NewVerifier(args[0])
	if err != nil {
		return fmt.Errorf("log vkey: %w", err)
	}
	verifiers := []note.Verifier{logVerifier}
	for _, vkey := range args[1:] {
		v, err := newCosigV1Verifier(vkey)
		if err != nil {
			return fmt.Errorf("witness vkey %s: %w", vkey, err)
		}
		verifiers = append(verifiers, v)
	}
	msg, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return err
	}
	logSigned := false
	for _, sig := range n.Sigs {
		if sig.Name == logVerifier.Name() && sig.Hash == logVerifier.KeyHash() {
			logSigned = true
		}
	}
	if !logSigned {
		return errors.New("no verified signature of the log key")
	}
	for _, sig := range n.Sigs {
		fmt.Printf("verified %s %08x\n", sig.Name, sig.Hash)
	}
	for _, sig := range n.UnverifiedSigs {
		fmt.Printf("unknown %s %08x\n", sig.Name, sig.Hash)
	}
	return nil
}
