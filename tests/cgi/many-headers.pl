#!/usr/bin/perl
# 400 header lines of about 120 bytes: a 48 KiB header block of short lines.
print "Content-Type: text/plain\n";
for my $i (1 .. 400) { printf "X-Many-%03d: %s\n", $i, "m" x 106; }
print "\nmany headers\n";
