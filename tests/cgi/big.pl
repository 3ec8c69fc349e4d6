#!/usr/bin/perl
# 1 MiB of numbered lines (ranges and HEAD on a large output).
$| = 0;
print "Content-Type: text/plain\n\n";
my $line = 0;
my $out = "";
while (length($out) < 1048576) { $out .= sprintf("%07d %s\n", $line++, "x" x 56); }
print substr($out, 0, 1048576);
