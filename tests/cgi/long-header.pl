#!/usr/bin/perl
# One header line of len= bytes (name, colon and value; 10000 by default).
my $n = $ENV{QUERY_STRING} =~ /^len=(\d+)$/ ? $1 : 10000;
my $name = "X-Long: ";
print "Content-Type: text/plain\n", $name, "v" x ($n - length($name)), "\n\nlong header\n";
