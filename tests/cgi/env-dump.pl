#!/usr/bin/perl
# Every variable a script sees, sorted, but REMOTE_PORT (each request has
# its own) and FCGI_ROLE (fcgiwrap adds it). Under the name
# env-dump-setenv.pl (a symlink) mod_env adds one.
use strict;
use warnings;
print "Content-Type: text/plain; charset=us-ascii\n\n";
for my $n (sort keys %ENV) {
    print "$n=[$ENV{$n}]\n" unless $n eq 'REMOTE_PORT' || $n eq 'FCGI_ROLE';
}
