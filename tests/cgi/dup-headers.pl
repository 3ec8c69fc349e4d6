#!/usr/bin/perl
# Repeated headers: Set-Cookie, a custom one, and two Content-Types.
print "Content-Type: text/plain\n";
print "Set-Cookie: a=1; Path=/\n";
print "Set-Cookie: b=2; Path=/\n";
print "X-Dup: one\n";
print "X-Dup: two\n";
print "Content-Type: text/html\n";
print "Cache-Control: no-cache\n";
print "Cache-Control: no-store\n";
print "\nduplicates\n";
