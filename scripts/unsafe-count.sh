#!/usr/bin/env bash
# Counts hand-written `unsafe` in the workspace's Rust sources: `unsafe`
# blocks, `unsafe fn` (including `unsafe extern "C" fn`) and `unsafe impl`,
# after stripping comments and string literals, so prose and the derive
# crate's "the expansion contains `unsafe`" checks do not count.
#
# Scope: every *.rs file of the workspace members (see Cargo.toml), test
# files included, target/ and fuzz/ (outside the workspace) excluded.
# `--no-tests` leaves out integration-test crates and test directories
# (tests/, */tests/); `--files` prints a line per file with unsafe in it.
#
#   scripts/unsafe-count.sh            # totals
#   scripts/unsafe-count.sh --files    # per file, then totals
set -euo pipefail
cd "$(dirname "$0")/.."

files_flag=0
no_tests=0
for a in "$@"; do
    case "$a" in
    --files) files_flag=1 ;;
    --no-tests) no_tests=1 ;;
    *) echo "usage: $0 [--files] [--no-tests]" >&2; exit 2 ;;
    esac
done

members=$(sed -n '/^members = \[/,/^\]/p' Cargo.toml | grep -o '"[^"]*"' | tr -d '"')
# shellcheck disable=SC2086
find $members -name target -prune -o -name '*.rs' -print | sort |
    if ((no_tests)); then grep -Ev '(^|/)tests/'; else cat; fi |
    FILES="$files_flag" perl -e '
        my ($tb, $tf, $ti, $te) = (0, 0, 0, 0);
        while (my $path = <STDIN>) {
            chomp $path;
            open(my $fh, "<", $path) or die "$path: $!";
            local $/; my $s = <$fh>; close $fh;
            # Strip block comments, then string and char literals, then
            # line comments (in that order, so "//" inside a string and
            # a quote inside a comment do not confuse the next step).
            $s =~ s{/\*.*?\*/}{}gs;
            $s =~ s{r(#*)".*?"\1}{""}gs;
            $s =~ s{"(?:\\.|[^"\\])*"}{""}gs;
            $s =~ s{\x27(?:\\.|[^\x27\\])\x27}{\x27\x27}g;
            $s =~ s{//[^\n]*}{}g;
            my $b = () = $s =~ /\bunsafe\s*\{/g;
            my $f = () = $s =~ /\bunsafe\s+(?:extern\s*(?:""\s*)?)?fn\b/g;
            my $i = () = $s =~ /\bunsafe\s+impl\b/g;
            my $e = () = $s =~ /\bunsafe\s+extern\s*(?:""\s*)?\{/g;
            $te += $e;
            if ($ENV{FILES} && $b + $f + $i) {
                printf "%4d %4d %4d  %s\n", $b, $f, $i, $path;
            }
            $tb += $b; $tf += $f; $ti += $i;
        }
        print "blocks  fn impl\n" if $ENV{FILES};
        printf "unsafe blocks %d, unsafe fn %d, unsafe impl %d: total %d\n",
            $tb, $tf, $ti, $tb + $tf + $ti;
        printf "(not in the total: %d unsafe extern block(s) declaring C functions)\n", $te;
    '
