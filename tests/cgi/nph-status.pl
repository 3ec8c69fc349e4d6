#!/usr/bin/perl
# An NPH script with an unusual status, no Content-Type and its own Content-Length.
$| = 1;
my $body = "gone for good\n";
print "HTTP/1.0 410 Gone Away\r\nContent-Length: " . length($body) . "\r\nX-Nph: status\r\n\r\n$body";
