// Command tlogcheck checks Release Ledger's transparency-log artefacts with Go's reference
// implementation, golang.org/x/mod/sumdb/{note,tlog} (Debian's golang-golang-x-mod-dev),
// built offline in GOPATH mode by the Rust interop tests (release_ledger_tests::go_tlogcheck).
//
// Every subcommand exits 0 when the artefact verifies, 1 when it does not (with the reason on
// stderr) and 2 on a usage error. Subcommands register themselves in `commands` from the
// file that implements them.
package main

import (
	"fmt"
	"os"
	"sort"
)

type command struct {
	usage string
	run   func(args []string) error
}

var commands = map[string]command{}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]].run == nil {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck COMMAND ARGS...")
		names := make([]string, 0, len(commands))
		for name := range commands {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(os.Stderr, "  %s %s\n", name, commands[name].usage)
		}
		os.Exit(2)
	}
	if err := commands[os.Args[1]].run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
