/*
 * Logging and (later) statement statistics.
 *
 * Logging: one line per event, "2026-01-02 03:04:05.678 UTC [pid] LEVEL msg",
 * to stderr or the configured logfile. The level is checked before any
 * formatting, so a disabled debug line costs one comparison.
 */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG, /* verbose = 1 */
	LOG_LVL_TRACE, /* verbose = 2 */
};

extern enum log_level log_current_level;

/* Send log lines to <path> (append) instead of stderr; NULL = stderr. -1 on error. */
int log_open(const char *path) __attribute__((warn_unused_result));
/* Reopen the current file (after rotation). */
void log_reopen(void);
void log_set_verbose(int verbose);

void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Copy <src> (may be NULL: "-") into <dst> of <n> bytes for a log line:
 * control characters and '\\' become \\xNN, so a name holding a
 * newline cannot forge a line; cut with "..." when it does not fit.
 * Returns <dst>.
 */
const char *log_escape(char *dst, size_t n, const char *src);

#define log_error(...) log_write(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)                                                                              \
	do {                                                                                       \
		if (log_current_level >= LOG_LVL_WARN)                                             \
			log_write(LOG_LVL_WARN, __VA_ARGS__);                                      \
	} while (0)
#define log_info(...)                                                                              \
	do {                                                                                       \
		if (log_current_level >= LOG_LVL_INFO)                                             \
			log_write(LOG_LVL_INFO, __VA_ARGS__);                                      \
	} while (0)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_current_level >= LOG_LVL_DEBUG)                                            \
			log_write(LOG_LVL_DEBUG, __VA_ARGS__);                                     \
	} while (0)

#endif /* SLUICE_STATS_H */
