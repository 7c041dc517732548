# The front door. Each target installs what is missing (scripts/deps.sh),
# sets up its own Meson build directory and builds there.
#
#   make run     build and start backmxd in the foreground on 127.0.0.1:2525
#   make check   ASan+UBSan build, every unit and black-box test
#   make fuzz    libFuzzer harnesses, each for FUZZ_TIME seconds
#   make bench   benchmarks against Postfix (bench/)

PY	?= /usr/bin/python3
FUZZ_TIME ?= 60
FUZZ_TARGETS ?= command addr esmtp data config dnspacket reply session

.PHONY: all deps build run check unit blackbox fuzz bench install clean

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

install: build
	meson install -C build

clean:
	rm -rf build build-asan build-fuzz
