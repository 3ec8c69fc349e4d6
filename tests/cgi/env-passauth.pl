#!/usr/bin/perl
# env.pl under another name, for the <Files> section with CGIPassAuth On.
use strict;
use warnings;
use FindBin;
do "$FindBin::Bin/env.pl";
die $@ if $@;
