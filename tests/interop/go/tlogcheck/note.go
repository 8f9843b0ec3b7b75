package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func init() {
	commands["note"] = command{"VKEY < NOTE: verify a signed note with note.Open and print its text", runNote}
}

// runNote verifies a signed note (a checkpoint) against one verifier key in the vkey format
// (name+keyhash+base64(type||key)).
func runNote(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want one vkey, got %d arguments", len(args))
	}
	verifier, err := note.NewVerifier(args[0])
	if err != nil {
		return fmt.Errorf("vkey: %w", err)
	}
	msg, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return err
	}
	fmt.Print(n.Text)
	return nil
}
