# mod_fastcgi_rs: build, run, test, install.
#   make          build target/release/mod_fastcgi_rs.so
#   make deps     install the Debian packages the build and tests need (idempotent)
#   make run      deps + build + Apache on 127.0.0.1:8080 serving the tutorial's app
#   make test     deps + build + deb + the whole test suite
#   make bench    wrk against our module and mod_proxy_fcgi, same backend, ratios
#   make bench-cost  instructions (callgrind) and system calls (strace) per request
#                 inside Apache: ours, mod_proxy_fcgi, mod_fcgid; build/bench-cost.txt
#                 (both also measure the original mod_fastcgi when
#                 ORIGINAL_FASTCGI_MODULE names a built one: docs/benchmarks.md)
#   make install  the module into Apache's module dir, .load/.conf into mods-available
#   make deb      build/deb/libapache2-mod-fastcgi-rs_<version>_<arch>.deb (dpkg-buildpackage), lintian

SHELL   := /bin/bash
CARGO   ?= cargo
RELEASE := target/release
MODULE  := $(RELEASE)/mod_fastcgi_rs.so
STATIC  := $(RELEASE)/libmod_fastcgi_rs.a
# What the Rust staticlib needs from the system (cargo rustc -- --print native-static-libs).
NATIVE  := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

.PHONY: all deps run test unit integration bench bench-cost install deb clean FORCE

all: $(MODULE)

$(STATIC): FORCE
	$(CARGO) build --release --lib

# Only fastcgi_module is exported; the Rust code is linked in statically.
$(MODULE): $(STATIC) c-shim/exports.map
	gcc -shared $(LDFLAGS) -o $@ -Wl,--undefined=fastcgi_module -Wl,--gc-sections \
	    -Wl,--version-script=c-shim/exports.map $(STATIC) $(NATIVE)
	@test "$$(nm -D --defined-only $@ | awk '{print $$3}')" = fastcgi_module || \
	    { echo "$@ exports more than fastcgi_module:"; nm -D --defined-only $@; exit 1; }

deps:
	./scripts/deps.sh

run: deps all
	./scripts/run.sh

# Every suite runs (--no-fail-fast); the last line sums them up. The .deb is
# built first: tests/deb_package.rs installs it on the system Apache.
test: deps all deb
	@set -o pipefail 2>/dev/null; mkdir -p build; \
	FASTCGI_RS_MODULE=$(CURDIR)/$(MODULE) $(CARGO) test --no-default-features --no-fail-fast 2>&1 | tee build/test.log; \
	rc=$$?; \
	awk '/^test result:/ { p += $$4; f += $$6 } END { printf "%d passed, %d failed\n", p, f }' build/test.log; \
	exit $$rc

bench: deps all
	FASTCGI_RS_MODULE=$(CURDIR)/$(MODULE) ./scripts/bench.sh

# The Debian package (debian/, built by dpkg-buildpackage) in build/deb/;
# installs only its build dependencies (scripts/deb.sh), not the tests'.
deb:
	./scripts/deb.sh

# BENCH_COST_RUNS=2 measures twice and reports how far the runs differ.
bench-cost: deps all
	FASTCGI_RS_MODULE=$(CURDIR)/$(MODULE) python3 ./scripts/bench-cost.py

install: all
	install -m 644 $(MODULE) $$(apxs -q LIBEXECDIR)/mod_fastcgi_rs.so
	install -m 644 apache-conf/fastcgi_rs.load apache-conf/fastcgi_rs.conf /etc/apache2/mods-available/
	@echo "now: a2enmod fastcgi_rs && apachectl graceful"

clean:
	$(CARGO) clean
	rm -rf build
