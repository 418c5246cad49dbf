#!/usr/bin/perl
# check-log.pl -- judge test-bed scenarios from a serial log.
#
#   check-log.pl --log FILE --scenarios DIR [--qemu-rc N] [--timeout-hit] \
#                [--results FILE] NAME...
#
# For each NAME (in run order) it finds the section between
#   === RXEN-SCENARIO-BEGIN NAME ... ===   and   === RXEN-SCENARIO-END NAME rc=N seconds=S ===
# and decides PASS or FAIL: the END marker must be there with rc=0, and every pattern of
# DIR/NAME.expect must match a line of the section (a line "!PATTERN" must match none).
# Patterns are Perl regular expressions matched against the serial lines with the host
# timestamp "[  12.34] " and carriage returns removed. Lines that are empty or start
# with "#" are ignored.
#
# Prints, for each failing scenario, the reasons and its section; appends one line per
# scenario "NAME<TAB>PASS|FAIL<TAB>SECONDS<TAB>REASON" to --results; exits 1 when any
# scenario failed, 0 otherwise, 2 on bad usage.
use strict;
use warnings;
use Getopt::Long;

my ($log, $dir, $qemu_rc, $timeout_hit, $results) = (undef, undef, undef, 0, undef);
my $section_lines = 60;
GetOptions(
    'log=s'           => \$log,
    'scenarios=s'     => \$dir,
    'qemu-rc=i'       => \$qemu_rc,
    'timeout-hit'     => \$timeout_hit,
    'results=s'       => \$results,
    'section-lines=i' => \$section_lines,
) or exit 2;
die "usage: check-log.pl --log FILE --scenarios DIR NAME...\n" unless defined $log && defined $dir && @ARGV;
my @names = @ARGV;

open(my $fh, '<', $log) or die "check-log: cannot read $log: $!\n";
my @lines;
while (my $l = <$fh>) {
    $l =~ s/\r//g;
    chomp $l;
    $l =~ s/^\[\s*[0-9.]+\] //;    # host timestamp
    push @lines, $l;
}
close $fh;

my $dom0_up = grep { /=== RXEN-TESTBED-DOM0-UP / } @lines;
my $done    = grep { /=== RXEN-TESTBED-DONE ===/ } @lines;

sub machine_note {
    my @n;
    push @n, "the whole run hit its overall time limit" if $timeout_hit;
    push @n, "qemu exited with status $qemu_rc" if defined $qemu_rc && $qemu_rc != 0 && !$timeout_hit;
    push @n, "dom0 never reached the test bed's /init (Xen or Linux did not boot)" unless $dom0_up;
    push @n, "dom0 did not finish its scenario list" if $dom0_up && !$done;
    return @n ? ' (' . join('; ', @n) . ')' : '';
}

sub read_expect {
    my ($name) = @_;
    my $f = "$dir/$name.expect";
    open(my $e, '<', $f) or return undef;
    my @p;
    while (my $p = <$e>) {
        chomp $p;
        $p =~ s/\r//g;
        next if $p =~ /^\s*(#|$)/;
        push @p, $p;
    }
    close $e;
    return \@p;
}

my ($npass, $nfail) = (0, 0);
my $out;
if (defined $results) { open($out, '>>', $results) or die "check-log: cannot write $results: $!\n"; }

for my $name (@names) {
    my ($begin, $end, $rc, $secs, $timed_out, $skipped);
    for my $i (0 .. $#lines) {
        my $l = $lines[$i];
        if (!defined $begin && $l =~ /^=== RXEN-SCENARIO-BEGIN \Q$name\E( |$)/) { $begin = $i; next; }
        if (!defined $begin && $l =~ /^=== RXEN-SCENARIO-SKIP \Q$name\E (.*?) ===/) { $skipped = $1; last; }
        next unless defined $begin;
        if ($l =~ /^=== RXEN-SCENARIO-TIMEOUT \Q$name\E after (\d+)s ===/) { $timed_out = $1; }
        if ($l =~ /^=== RXEN-SCENARIO-END \Q$name\E rc=(\d+) seconds=([0-9.]+) ===/) {
            ($end, $rc, $secs) = ($i, $1, $2);
            last;
        }
    }
    my @reasons;
    my ($from, $to);
    if (defined $skipped) {
        push @reasons, "not run: $skipped";
    } elsif (!defined $begin) {
        push @reasons, "missing: it never started" . machine_note();
    } else {
        $from = $begin;
        if (defined $end) {
            $to = $end;
        } else {
            # Up to the next scenario or the end of the log.
            $to = $#lines;
            for my $i ($begin + 1 .. $#lines) {
                if ($lines[$i] =~ /^=== RXEN-SCENARIO-BEGIN /) { $to = $i - 1; last; }
            }
        }
        my @sec = @lines[$from .. $to];
        if (defined $timed_out) {
            push @reasons, "timed out: killed after its limit of ${timed_out}s (raise '# timeout:' in its script if it is just slow)";
        } elsif (!defined $end) {
            push @reasons, "did not finish: no END marker" . machine_note();
        } elsif ($rc != 0) {
            my @f = grep { /^FAIL: / } @sec;
            push @reasons, "script exited with status $rc" . (@f ? ": $f[-1]" : '');
        }
        my $pats = read_expect($name);
        if (!defined $pats) {
            push @reasons, "no expectations: $dir/$name.expect is missing (every scenario needs one)";
        } else {
            for my $p (@$pats) {
                my $neg = $p =~ s/^!//;
                my $re = eval { qr/$p/ };
                if (!defined $re) { push @reasons, "bad pattern in $name.expect: $p"; next; }
                # The runner's own marker lines do not count as the scenario's output.
                my @hit = grep { $_ !~ /^=== RXEN-SCENARIO-/ && $_ =~ $re } @sec;
                if ($neg && @hit) {
                    push @reasons, "forbidden pattern /$p/ found: '$hit[0]'";
                } elsif (!$neg && !@hit) {
                    push @reasons, "expected pattern /$p/ not found in its output";
                }
            }
        }
    }
    $secs //= '-';
    if (@reasons) {
        $nfail++;
        print "\n##### FAIL $name: $reasons[0]\n";
        my @also = @reasons[1 .. $#reasons];
        my $more = @also > 5 ? @also - 5 : 0;
        print "#####   also: $_\n" for @also[0 .. ($more ? 4 : $#also)];
        print "#####   and $more more reasons\n" if $more;
        if (defined $from) {
            my $n = $to - $from + 1;
            my $start = $n > $section_lines ? $to - $section_lines + 1 : $from;
            print "##### its section of the log", ($start > $from ? " (last $section_lines of $n lines)" : ''), ":\n";
            print "  | $_\n" for @lines[$start .. $to];
            print "##### end of ${name}'s section\n";
        }
        print $out join("\t", $name, 'FAIL', $secs, $reasons[0]), "\n" if $out;
    } else {
        $npass++;
        print $out join("\t", $name, 'PASS', $secs, ''), "\n" if $out;
    }
}
close $out if $out;
exit($nfail ? 1 : 0);
