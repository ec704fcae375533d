//go:build race

package e2e

// raceEnabled reports whether the tests were built with -race; the hubbub
// binary under test is then built with -race too.
const raceEnabled = true
