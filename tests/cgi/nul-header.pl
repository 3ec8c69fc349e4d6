#!/usr/bin/perl
# A NUL byte inside a header value.
print "Content-Type: text/plain\nX-Nul: before\0after\n\nnul in a header\n";
