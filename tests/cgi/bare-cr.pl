#!/usr/bin/perl
# A bare CR inside a header line.
print "Content-Type: text/plain\nX-Cr: left\rright\n\nbare cr\n";
