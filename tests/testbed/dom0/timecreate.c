/*
 * timecreate: the rxl-timing scenario's stopwatch, the same for `xl create` and
 * `rxl create`. Replaces a shell loop that polled /proc/uptime (10 ms resolution)
 * every 50 ms and forked a `sleep` and a subshell per poll, work that competed with
 * the console daemon under TCG.
 *
 *   timecreate RESULT LOG TIMEOUT_MS CMD [ARGS...]
 *
 * Watches LOG's directory with inotify (set up before CMD starts, so no event is
 * missed), takes CLOCK_MONOTONIC, runs CMD (fork + execvp, stdin/stdout/stderr
 * inherited), takes the time CMD returned, then waits until LOG exists (the console
 * daemon opened it: it has set the domain's console up) and until it is non-empty
 * (the guest's first console line is in it), at most TIMEOUT_MS from the start.
 * Writes one line to RESULT, in microseconds from CMD's start:
 *   ret_us=N log_created_us=N first_line_us=N start_realtime=SECONDS.MICROS
 * (start_realtime to line the spans up with rxl's and the monitor's log timestamps;
 * log_created_us is -1 when LOG already existed before the first look).
 * Exit status: CMD's when it failed, 3 on timeout, 2 on a usage or system error.
 * Built by tests/testbed/run.sh with aarch64-linux-gnu-gcc -static.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_TIMEOUT 3
#define EXIT_ERROR 2
#define EVENT_BUF_SIZE 4096

static int64_t now_us(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* 1 when LOG exists, 2 when it is non-empty, 0 when it does not exist. */
static int log_state(const char *log)
{
	struct stat st;

	if (stat(log, &st) != 0)
		return 0;
	return st.st_size > 0 ? 2 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: timecreate RESULT LOG TIMEOUT_MS CMD [ARGS...]\n");
		return EXIT_ERROR;
	}
	const char *result = argv[1], *log = argv[2];
	int64_t timeout_us = strtoll(argv[3], NULL, 10) * 1000;
	char *logcopy = strdup(log);
	const char *dir = dirname(logcopy);

	int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ino < 0 || inotify_add_watch(ino, dir, IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE) < 0) {
		fprintf(stderr, "timecreate: inotify on %s: %s\n", dir, strerror(errno));
		return EXIT_ERROR;
	}

	int64_t real0 = now_us(CLOCK_REALTIME);
	int64_t t0 = now_us(CLOCK_MONOTONIC);
	pid_t pid = fork();
	if (pid < 0) {
		perror("timecreate: fork");
		return EXIT_ERROR;
	}
	if (pid == 0) {
		execvp(argv[4], &argv[4]);
		fprintf(stderr, "timecreate: exec %s: %s\n", argv[4], strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("timecreate: waitpid");
			return EXIT_ERROR;
		}
	}
	int64_t t1 = now_us(CLOCK_MONOTONIC);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "timecreate: %s failed (status %#x)\n", argv[4], status);
		return WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status) : 1;
	}

	/* Existence and size are checked after every batch of events (and once before
	 * the first wait): the events only say "look again". */
	int64_t created = -1, first = -1;
	int state = log_state(log); /* already there at the first look: created unknown */
	for (;;) {
		int64_t t = now_us(CLOCK_MONOTONIC);
		if (state == 2) {
			first = t;
			break;
		}
		if (t - t0 >= timeout_us) {
			fprintf(stderr, "timecreate: no console line in %s within %s ms\n", log, argv[3]);
			return EXIT_TIMEOUT;
		}
		struct pollfd p = { .fd = ino, .events = POLLIN };
		int64_t left_ms = (timeout_us - (t - t0)) / 1000 + 1;
		if (poll(&p, 1, (int)left_ms) < 0 && errno != EINTR) {
			perror("timecreate: poll");
			return EXIT_ERROR;
		}
		char buf[EVENT_BUF_SIZE];
		while (read(ino, buf, sizeof(buf)) > 0)
			;
		int prev = state;
		state = log_state(log);
		if (prev == 0 && state >= 1)
			created = now_us(CLOCK_MONOTONIC);
	}

	FILE *f = fopen(result, "w");
	if (!f) {
		fprintf(stderr, "timecreate: %s: %s\n", result, strerror(errno));
		return EXIT_ERROR;
	}
	fprintf(f, "ret_us=%lld log_created_us=%lld first_line_us=%lld start_realtime=%lld.%06lld\n",
		(long long)(t1 - t0), (long long)(created < 0 ? -1 : created - t0),
		(long long)(first - t0), (long long)(real0 / 1000000), (long long)(real0 % 1000000));
	fclose(f);
	return 0;
}
