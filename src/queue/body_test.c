/*
 * body_test: the body buffer on a real file system. Each row appends a
 * list of chunks to a fresh body in a fresh directory and says whether the
 * body must still be in memory or in a file; the loop checks the bytes
 * both ways (body_read() and, for a file, reading the file itself), the
 * file's mode and close-on-exec flag, and that free leaves the directory
 * empty. Error rows make the file system refuse: a directory that is not
 * there, or RLIMIT_FSIZE cutting a write short (EFBIG), and check that the
 * error sticks.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "body.h"

#define MAXCHUNKS	6

/* Byte i of every test body: varies with the offset, so that a chunk
 * written twice or at the wrong place shows. */
static unsigned char
pattern(uint64_t i)
{
	return (unsigned char)(i * 7 + i / 251 + 3);
}

static void
fill(unsigned char *buf, uint64_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = pattern(off + i);
}

static char *
join(const char *a, const char *b)
{
	size_t len = strlen(a) + strlen(b) + 1;
	char *s = malloc(len);

	assert_non_null(s);
	snprintf(s, len, "%s%s", a, b);
	return s;
}

static char *
make_dir(void)
{
	const char *t = getenv("TMPDIR");
	char *dir;

	if (t == NULL || *t == '\0')
		t = "/tmp";
	dir = join(t, "/body_test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return dir;
}

/* Entries in dir, . and .. aside. */
static int
dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* The body holds pattern(0 .. size-1): read it back in odd-sized pieces. */
static void
check_content(const struct body *b, uint64_t size)
{
	static const size_t steps[] = { 1, 7, 4096, 100000 };
	unsigned char *got, *want;
	uint64_t off;
	size_t i;
	long n;

	got = malloc(100000);
	want = malloc(100000);
	assert_non_null(got);
	assert_non_null(want);
	assert_int_equal(body_size(b), size);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (steps[i] == 1 && size > 5000)
			continue;
		for (off = 0; off < size; off += (uint64_t)n) {
			n = body_read(b, off, got, steps[i]);
			assert_true(n > 0);
			assert_true((size_t)n <= steps[i]);
			fill(want, off, (size_t)n);
			assert_memory_equal(got, want, (size_t)n);
		}
		assert_int_equal(off, size);
	}
	/* At and past the end: 0, and the buffer is not touched. */
	memset(got, 0xaa, 4);
	assert_int_equal(body_read(b, size, got, 4), 0);
	assert_int_equal(body_read(b, size + 10, got, 4), 0);
	assert_int_equal(got[0], 0xaa);
	free(got);
	free(want);
}

/* Read the file by its name, without the body: what the queue will see. */
static void
check_file(const char *path, uint64_t size)
{
	unsigned char *got, *want;
	struct stat st;
	ssize_t n;
	int fd;

	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, size);
	got = malloc(size + 1);
	want = malloc(size + 1);
	assert_non_null(got);
	assert_non_null(want);
	assert_true((fd = open(path, O_RDONLY)) != -1);
	n = read(fd, got, size + 1);
	close(fd);
	assert_int_equal(n, size);
	fill(want, 0, size);
	assert_memory_equal(got, want, size);
	free(got);
	free(want);
}

static void
append_chunks(struct body *b, const size_t *chunks, size_t nchunks)
{
	unsigned char *buf;
	uint64_t off = 0;
	size_t i;

	for (i = 0; i < nchunks; i++) {
		buf = malloc(chunks[i] + 1);
		assert_non_null(buf);
		fill(buf, off, chunks[i]);
		assert_int_equal(body_append(b, buf, chunks[i]), 0);
		off += chunks[i];
		assert_int_equal(body_size(b), off);
		free(buf);
	}
}

static const struct {
	const char	*name;
	size_t		 mem_max;
	size_t		 nchunks;
	size_t		 chunks[MAXCHUNKS];
	int		 spilled;
} rows[] = {
	{ "empty", 16, 0, { 0 }, 0 },
	{ "empty appends", 16, 3, { 0, 0, 0 }, 0 },
	{ "under mem_max", 16, 2, { 5, 5 }, 0 },
	{ "exactly mem_max", 16, 2, { 10, 6 }, 0 },
	{ "exactly mem_max, then nothing", 16, 3, { 10, 6, 0 }, 0 },
	{ "one past mem_max", 16, 2, { 10, 7 }, 1 },
	{ "first append too big", 16, 1, { 100 }, 1 },
	{ "spilled, then more", 16, 4, { 10, 10, 1000, 1 }, 1 },
	{ "mem_max 0", 0, 2, { 1, 1 }, 1 },
	{ "mem_max 0, nothing", 0, 1, { 0 }, 0 },
	{ "grows to mem_max", 100000, 4, { 3000, 3000, 50000, 44000 }, 0 },
	{ "grows by bytes", 9, 6, { 1, 1, 1, 1, 1, 4 }, 0 },
	{ "grows, capped at mem_max", 5000, 2, { 4096, 1 }, 0 },
	{ "grows, then spills", 100000, 3, { 60000, 40000, 1 }, 1 },
	{ "big", 65536, 3, { 65536, 1000000, 3 }, 1 },
};

static void
test_rows(void **state)
{
	struct body *b;
	const void *mem;
	char *dir, *path;
	uint64_t size;
	size_t i, j, len;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		print_message("# %s\n", rows[i].name);
		dir = make_dir();
		b = body_new(dir, rows[i].mem_max);
		append_chunks(b, rows[i].chunks, rows[i].nchunks);
		for (size = 0, j = 0; j < rows[i].nchunks; j++)
			size += rows[i].chunks[j];
		assert_int_equal(body_error(b), 0);
		mem = body_mem(b, &len);
		if (rows[i].spilled) {
			assert_null(mem);
			assert_true(body_fd(b) >= 0);
			assert_true(fcntl(body_fd(b), F_GETFD) & FD_CLOEXEC);
			assert_non_null(body_path(b));
			assert_int_equal(strncmp(body_path(b), dir,
			    strlen(dir)), 0);
			assert_int_equal(strncmp(body_path(b) + strlen(dir),
			    "/body.", 6), 0);
			assert_int_equal(dir_entries(dir), 1);
			check_file(body_path(b), size);
		} else {
			assert_non_null(mem);
			assert_int_equal(len, size);
			assert_int_equal(body_fd(b), -1);
			assert_null(body_path(b));
			assert_int_equal(dir_entries(dir), 0);
			assert_true(len <= rows[i].mem_max);
			/* Grown geometrically, but never past mem_max (what
			 * glibc rounds up is well under 64 bytes). */
			if (len > 0)
				assert_true(malloc_usable_size(
				    (void *)(uintptr_t)mem) <
				    rows[i].mem_max + 64);
		}
		check_content(b, size);
		path = body_path(b) ? strdup(body_path(b)) : NULL;
		body_free(b);
		/* Nobody took it: free removes it. */
		if (path != NULL)
			assert_int_equal(access(path, F_OK), -1);
		assert_int_equal(dir_entries(dir), 0);
		assert_int_equal(rmdir(dir), 0);
		free(path);
		free(dir);
	}
}

/* A taken file outlives the body; a memory body has no file to take. */
static void
test_take_file(void **state)
{
	static const size_t chunks[] = { 8, 9, 4000 };
	struct body *b;
	const char *p;
	char *dir, *path;

	dir = make_dir();
	b = body_new(dir, 16);
	append_chunks(b, chunks, 1);
	assert_null(body_take_file(b));
	body_free(b);
	assert_int_equal(dir_entries(dir), 0);

	b = body_new(dir, 16);
	append_chunks(b, chunks, 3);
	p = body_take_file(b);
	assert_non_null(p);
	assert_string_equal(p, body_path(b));
	path = strdup(p);
	body_free(b);
	check_file(path, 8 + 9 + 4000);
	assert_int_equal(dir_entries(dir), 1);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	free(path);
	free(dir);
}

/*
 * Errors. fsize: RLIMIT_FSIZE for the rows' appends (0: none), so a write
 * past it fails EFBIG after writing what fits. The chunk at fail_at fails
 * with error; every later append fails the same way, and size is what the
 * body really holds.
 */
static const struct {
	const char	*name;
	int		 no_dir;
	rlim_t		 fsize;
	size_t		 mem_max;
	size_t		 nchunks;
	size_t		 chunks[MAXCHUNKS];
	size_t		 fail_at;
	int		 error;
	uint64_t	 size;		/* after the failure */
	int		 file_left;	/* a spilled file still there */
} err_rows[] = {
	{ "no tmpdir: spill fails", 1, 0, 8, 3, { 4, 8, 1 }, 1, ENOENT, 4, 0 },
	{ "no tmpdir, mem_max 0", 1, 0, 0, 2, { 1, 1 }, 0, ENOENT, 0, 0 },
	{ "EFBIG while spilling", 0, 100, 200, 3, { 150, 100, 1 }, 1, EFBIG,
	  150, 0 },
	{ "EFBIG after spilling", 0, 100, 10, 4, { 50, 100, 1, 1 }, 1, EFBIG,
	  100, 1 },
	{ "EFBIG at once", 0, 100, 10, 3, { 50, 50, 1 }, 2, EFBIG, 100, 1 },
};

static void
test_errors(void **state)
{
	struct rlimit old, lim;
	struct body *b;
	unsigned char buf[200];
	char *dir, *missing;
	uint64_t off;
	size_t i, j;
	int rc[MAXCHUNKS], errs[MAXCHUNKS], err, after, after_errno;

	/* Past the limit the kernel sends SIGXFSZ before it returns EFBIG. */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	for (i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
		print_message("# %s\n", err_rows[i].name);
		dir = make_dir();
		missing = join(dir, "/missing");
		b = body_new(err_rows[i].no_dir ? missing : dir,
		    err_rows[i].mem_max);
		lim = old;
		if (err_rows[i].fsize != 0)
			lim.rlim_cur = err_rows[i].fsize;
		/* No cmocka output while the limit is on: its log could be
		 * a file past the limit. Record, restore, then check. */
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
		for (off = 0, j = 0; j < err_rows[i].nchunks; j++) {
			fill(buf, off, err_rows[i].chunks[j]);
			errno = 0;
			rc[j] = body_append(b, buf, err_rows[i].chunks[j]);
			errs[j] = errno;
			off += err_rows[i].chunks[j];
		}
		err = body_error(b);
		setrlimit(RLIMIT_FSIZE, &old);

		for (j = 0; j < err_rows[i].nchunks; j++) {
			if (j < err_rows[i].fail_at)
				assert_int_equal(rc[j], 0);
			else {
				assert_int_equal(rc[j], -1);
				assert_int_equal(errs[j], err_rows[i].error);
			}
		}
		assert_int_equal(err, err_rows[i].error);
		/* Sticky: with room again, still no. */
		errno = 0;
		after = body_append(b, "x", 1);
		after_errno = errno;
		assert_int_equal(after, -1);
		assert_int_equal(after_errno, err_rows[i].error);
		assert_int_equal(body_error(b), err_rows[i].error);
		check_content(b, err_rows[i].size);
		assert_int_equal(dir_entries(dir), err_rows[i].file_left);
		body_free(b);
		assert_int_equal(dir_entries(dir), 0);
		assert_int_equal(rmdir(dir), 0);
		free(missing);
		free(dir);
	}
	signal(SIGXFSZ, SIG_DFL);
}

static void
test_free_null(void **state)
{
	body_free(NULL);
}

/*
 * body_punch: three 64 KB bodies in one file (the body log, docs/queue.md);
 * the middle one punched: it reads back as zeros, its neighbours whole,
 * the size kept and the blocks given back (where the file system can
 * punch; on one that cannot, EOPNOTSUPP and nothing changed).
 */
static void
test_punch(void **state)
{
	enum { PART = 64 * 1024 };
	static unsigned char buf[3 * PART], back[3 * PART];
	char *dir = make_dir(), *path = join(dir, "/log");
	struct stat before, after;
	size_t i;
	int fd;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(i) | 1;	/* never 0 */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fstat(fd, &before), 0);
	assert_int_equal(body_punch(fd, PART, 0), 0);
	if (body_punch(fd, PART, PART) == -1) {
		assert_int_equal(errno, EOPNOTSUPP);
		goto out;
	}
	assert_int_equal(fstat(fd, &after), 0);
	assert_int_equal(after.st_size, sizeof(buf));
	assert_true(after.st_blocks < before.st_blocks);
	assert_int_equal(pread(fd, back, sizeof(back), 0), sizeof(back));
	assert_memory_equal(back, buf, PART);
	for (i = PART; i < 2 * PART; i++)
		assert_int_equal(back[i], 0);
	assert_memory_equal(back + 2 * PART, buf + 2 * PART, PART);
out:
	close(fd);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	free(path);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_take_file),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_punch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
