# The front door. Each target installs what is missing (scripts/deps.sh),
# sets up its own Meson build directory and builds there.
#
#   make run     build and start backmxd in the foreground on 127.0.0.1:2525
#   make demo    a first look without Internet: a primary, backmxd and its
#                dashboard on loopback, the story of the README (Ctrl-C ends)
#   make check   ASan+UBSan build, every unit and black-box test
#   make fuzz    libFuzzer harnesses, each for FUZZ_TIME seconds
#   make bench   benchmarks against Postfix (bench/)
#   make bench-cluster  what Redis costs one node: the RCPT check and the
#                accept rate with redis_servers set and unset (bench/cluster.py)
#   make bench-scale  how costs grow with queued messages and domains, the
#                big drain against Postfix, a day's outage replayed (~22 min)
#                (bench/scale.py; long: SCALE_ARGS=--queued 1000000 for 1M)
#   make install    programs, example configuration, folders, man pages,
#                   systemd unit (docs/service.md); PREFIX, DESTDIR,
#                   SYSCONFDIR, LOCALSTATEDIR, BACKMX_USER as usual
#   make uninstall  the same, back out (a changed configuration and a
#                   spool that holds mail stay)
#   make man     man/backmx.conf.5 again from docs/configuration.md
#   make deb     build-deb/backmx_VERSION_amd64.deb with Debian's tools
#                (debian/, dpkg-buildpackage), then lintian on it

PY	?= /usr/bin/python3
FUZZ_TIME ?= 60
FUZZ_TARGETS ?= command addr esmtp data config dnspacket reply session milter http query redis idna mime7 bulk dccifd milteredits
PREFIX	?= /usr/local
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
BACKMX_USER ?= backmx
DESTDIR	?=

.PHONY: all deps build run demo check unit blackbox fuzz bench bench-milter bench-cluster bench-scale install uninstall man deb clean

all: build

deps:
	@sh scripts/deps.sh

build/build.ninja: | deps
	meson setup build

build: deps build/build.ninja
	ninja -C build

run: build
	@mkdir -p var
	./build/backmxd -f -c etc/backmx.conf

# A first look without Internet (docs/dashboard.md "The demo"): a primary,
# a DNS and backmxd on loopback, the story told step by step; Ctrl-C ends.
demo: build
	BACKMXD=build/backmxd $(PY) scripts/demo.py

build-asan/build.ninja: | deps
	meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
	    -Dwerror=true -Dtests=enabled

check: deps build-asan/build.ninja build/build.ninja
	ninja -C build-asan
	ninja -C build
	$(PY) scripts/check.py build-asan

build-fuzz/build.ninja: | deps
	CC=clang-14 meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined \
	    -Db_lundef=false -Dtests=disabled

fuzz: deps build-fuzz/build.ninja
	ninja -C build-fuzz
	sh scripts/fuzz.sh build-fuzz $(FUZZ_TIME) $(FUZZ_TARGETS)

bench: build
	$(PY) bench/run.py $(if $(QUICK),--quick,)

# What one rspamd check costs backup mode (docs/milter.md "Cost").
bench-milter: build
	$(PY) bench/milter.py

# What Redis costs one node (docs/cluster.md; bench/README.md "Cluster").
bench-cluster: build
	$(PY) bench/cluster.py $(if $(QUICK),--quick,)

SCALE_ARGS ?=
bench-scale: build
	ninja -C build bench_scale_load bench_domains_lookup
	nice $(PY) bench/scale.py $(SCALE_ARGS)

# The paths are install-time only: nothing compiled depends on them
# (backmxd's default -c is /etc/backmx/backmx.conf; the unit passes -c),
# so changing them relinks nothing.
INSTALL_OPTS = -Dprefix=$(PREFIX) -Dsysconfdir=$(SYSCONFDIR) \
	-Dlocalstatedir=$(LOCALSTATEDIR) -Dservice_user=$(BACKMX_USER)

install: build
	meson configure build $(INSTALL_OPTS)
	ninja -C build
	DESTDIR="$(DESTDIR)" meson install -C build --no-rebuild --quiet

man:
	$(PY) scripts/man_conf.py

uninstall:
	DESTDIR="$(DESTDIR)" sh scripts/install.sh uninstall $(PREFIX) \
	    $(SYSCONFDIR) $(LOCALSTATEDIR) build/backmx.conf etc/install/domains

# The package is built from a copy of the tree in build-deb/src (so that
# dpkg-buildpackage's outputs, written beside the source, land in
# build-deb and not above the checkout); the .deb is moved to build-deb/.
DEB_DIR	?= build-deb
deb: deps
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src/backmx
	tar -c --exclude-vcs --exclude='./build*' --exclude='./var' \
	    --exclude='__pycache__' -f - . | tar -x -C $(DEB_DIR)/src/backmx
	cd $(DEB_DIR)/src/backmx && dpkg-buildpackage -us -uc -b
	mv $(DEB_DIR)/src/*.deb $(DEB_DIR)/
	lintian --fail-on error,warning --info $(DEB_DIR)/*.deb
	@ls $(DEB_DIR)/*.deb

clean:
	rm -rf build build-asan build-fuzz build-deb
