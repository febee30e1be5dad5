/*
 * cli.h - what the subcommands share: the exit-code convention, a small
 * long-option parser, and printing helpers. Only src/cli/ may exit().
 */
#ifndef RF_CLI_H
#define RF_CLI_H

#include <stdio.h>

#include "core/core.h"

/* Exit codes of every command. */
enum { RF_EXIT_OK = 0, RF_EXIT_USAGE = 1, RF_EXIT_BADINPUT = 2 };

typedef struct rf_cmd {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    void (*usage)(FILE *out);
} rf_cmd;

extern const rf_cmd rf_cmd_info, rf_cmd_quantize, rf_cmd_synth;
extern const rf_cmd rf_cmd_generate, rf_cmd_bench, rf_cmd_chat;
extern const rf_cmd rf_cmd_tokenize, rf_cmd_detokenize;
extern const rf_cmd rf_cmd_template;
extern const rf_cmd rf_cmd_serve;
extern const rf_cmd rf_cmd_context;

/* ---- option parsing ----------------------------------------------------
 * Options are "--name value", "--name=value" or flags "--name"; short
 * aliases like "-o". rf_args walks argv; positional arguments are collected
 * in order. Unknown options are usage errors. */
typedef struct rf_opt {
    const char *name;  /* "--out" */
    const char *alias; /* "-o" or NULL */
    bool takes_value;
} rf_opt;

#define RF_MAX_POS 16
#define RF_MAX_OPTS 32
typedef struct rf_args {
    const char *pos[RF_MAX_POS];
    int n_pos;
    const char *val[RF_MAX_OPTS]; /* value per option index; "" for a set flag */
} rf_args;

/* Returns 0 on success; on error prints a message naming the option and
 * returns RF_EXIT_USAGE. "--help"/"-h" sets *want_help. */
int rf_args_parse(int argc, char **argv, const rf_opt *opts, int n_opts, rf_args *out,
                  bool *want_help);
/* Parses a non-negative integer/float option; prints an error and returns false on junk. */
bool rf_arg_long(const char *opt, const char *s, long lo, long hi, long *out);
bool rf_arg_double(const char *opt, const char *s, double *out);

/* "1.23 GiB" into buf. */
const char *rf_fmt_bytes(double bytes, char *buf, size_t n);
/* "134.52 M" style count. */
const char *rf_fmt_count(double n, char *buf, size_t len);

/* A progress bar on a terminal (stderr), nothing otherwise. */
typedef struct rf_progress {
    const char *label;
    double total, done, last_draw;
    bool tty;
} rf_progress;
void rf_progress_start(rf_progress *p, const char *label, double total);
void rf_progress_update(rf_progress *p, double done);
void rf_progress_end(rf_progress *p);

/* Prints "rocmforge: error: <msg>" to stderr. */
void rf_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
