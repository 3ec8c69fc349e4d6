#!/usr/bin/perl
# The CGI/1.1 variables a script sees, one per line (unset ones say so).
# (env-passauth.pl is the same script under CGIPassAuth On.)
use strict;
use warnings;
my @names = qw(GATEWAY_INTERFACE SERVER_PROTOCOL SERVER_NAME SERVER_PORT
  REQUEST_METHOD REQUEST_URI QUERY_STRING SCRIPT_NAME SCRIPT_FILENAME
  PATH_INFO PATH_TRANSLATED DOCUMENT_ROOT CONTENT_LENGTH CONTENT_TYPE
  REMOTE_ADDR HTTP_HOST HTTP_X_EQUIV HTTP_PROXY HTTP_AUTHORIZATION
  REDIRECT_STATUS REDIRECT_URL REDIRECT_QUERY_STRING REDIRECT_HANDLER
  AUTH_TYPE REMOTE_USER HTTPS EQUIV_SETENV);
print "Content-Type: text/plain; charset=us-ascii\n\n";
for my $n (@names) {
    print "$n=", (defined $ENV{$n} ? "[$ENV{$n}]" : "<unset>"), "\n";
}
