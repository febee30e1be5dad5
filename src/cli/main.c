/*
 * main.c - the `rocmforge` entry point: dispatches to a subcommand from the
 * command table, and holds the option parser and printing helpers every
 * command shares.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const rf_cmd *const commands[] = {
    &rf_cmd_info,
    &rf_cmd_quantize,
    &rf_cmd_synth,
    &rf_cmd_generate,
    &rf_cmd_bench,
    &rf_cmd_chat,
    &rf_cmd_tokenize,
    &rf_cmd_detokenize,
    &rf_cmd_template,
    &rf_cmd_serve,
    &rf_cmd_context,
};

static void usage(FILE *out) {
    fprintf(out,
            "ROCmForge %s - LLM inference engine for GGUF models\n\n"
            "usage: rocmforge <command> [options]\n\ncommands:\n",
            rf_version());
    for (size_t i = 0; i < RF_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "\n'rocmforge <command> --help' describes a command.\n"
                 "Exit codes: 0 ok, 1 usage error, 2 bad input (file, model, data).\n");
}

int main(int argc, char **argv) {
    const char *lvl = getenv("ROCMFORGE_LOG_LEVEL");
    if (lvl) {
        static const char *names[] = {"debug", "info", "warn", "error", "none"};
        for (int i = 0; i < 5; i++)
            if (strcmp(lvl, names[i]) == 0) rf_log_set_level((rf_log_level)i);
    }
    if (argc < 2) {
        usage(stderr);
        return RF_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return RF_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("rocmforge %s\n", rf_version());
        return RF_EXIT_OK;
    }
    for (size_t i = 0; i < RF_ARRAY_LEN(commands); i++)
        if (strcmp(commands[i]->name, name) == 0) return commands[i]->run(argc - 1, argv + 1);
    rf_cli_error("unknown command '%s'", name);
    usage(stderr);
    return RF_EXIT_USAGE;
}

/* ---- shared helpers ---------------------------------------------------- */

void rf_cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rocmforge: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int rf_args_parse(int argc, char **argv, const rf_opt *opts, int n_opts, rf_args *out,
                  bool *want_help) {
    RF_ASSERT(n_opts <= RF_MAX_OPTS);
    memset(out, 0, sizeof *out);
    *want_help = false;
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (out->n_pos == RF_MAX_POS) {
                rf_cli_error("too many arguments");
                return RF_EXIT_USAGE;
            }
            out->pos[out->n_pos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) { only_pos = true; continue; }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { *want_help = true; continue; }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        int k = -1;
        for (int j = 0; j < n_opts; j++) {
            if ((strlen(opts[j].name) == nlen && strncmp(opts[j].name, a, nlen) == 0) ||
                (opts[j].alias && strlen(opts[j].alias) == nlen && strncmp(opts[j].alias, a, nlen) == 0)) {
                k = j;
                break;
            }
        }
        if (k < 0) {
            rf_cli_error("unknown option '%.*s'", (int)nlen, a);
            return RF_EXIT_USAGE;
        }
        if (!opts[k].takes_value) {
            if (eq) { rf_cli_error("option %s takes no value", opts[k].name); return RF_EXIT_USAGE; }
            out->val[k] = "";
        } else if (eq) {
            out->val[k] = eq + 1;
        } else if (i + 1 < argc) {
            out->val[k] = argv[++i];
        } else {
            rf_cli_error("option %s needs a value", opts[k].name);
            return RF_EXIT_USAGE;
        }
    }
    return 0;
}

bool rf_arg_long(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        rf_cli_error("%s: '%s' is not an integer in [%ld, %ld]", opt, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool rf_arg_double(const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        rf_cli_error("%s: '%s' is not a number", opt, s);
        return false;
    }
    *out = v;
    return true;
}

const char *rf_fmt_bytes(double b, char *buf, size_t n) {
    static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024.0 && i < 4) { b /= 1024.0; i++; }
    snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", b, u[i]);
    return buf;
}

const char *rf_fmt_count(double v, char *buf, size_t n) {
    static const char *u[] = {"", " K", " M", " B", " T"};
    int i = 0;
    while (v >= 1000.0 && i < 4) { v /= 1000.0; i++; }
    snprintf(buf, n, i ? "%.2f%s" : "%.0f%s", v, u[i]);
    return buf;
}

void rf_progress_start(rf_progress *p, const char *label, double total) {
    p->label = label;
    p->total = total > 0 ? total : 1;
    p->done = 0;
    p->last_draw = 0;
    p->tty = isatty(STDERR_FILENO);
}

void rf_progress_update(rf_progress *p, double done) {
    p->done = done;
    if (!p->tty) return;
    double now = rf_time_now();
    if (now - p->last_draw < 0.1 && done < p->total) return;
    p->last_draw = now;
    int width = 40, fill = (int)(width * done / p->total);
    if (fill > width) fill = width;
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %5.1f%%", 100.0 * done / p->total);
    fflush(stderr);
}

void rf_progress_end(rf_progress *p) {
    if (!p->tty) return;
    rf_progress_update(p, p->total);
    fputc('\n', stderr);
}
