/*
 * lexer.h - the tokens the template lexer (lexer.c) hands the parser
 * (parser.c). Internal to src/template.
 */
#ifndef RF_TMPL_LEXER_H
#define RF_TMPL_LEXER_H

#include "template/tmpl-impl.h"

enum {
    TK_DATA,   /* template text: s, n point into the normalized source */
    TK_VBEGIN, /* {{ */
    TK_VEND,   /* }} */
    TK_BBEGIN, /* {% */
    TK_BEND,   /* %} */
    TK_NAME,   /* s: interned name */
    TK_STRING, /* s, n: decoded value (template arena) */
    TK_INT,    /* i */
    TK_FLOAT,  /* f */
    TK_OP,     /* op: TO_* */
    TK_EOF,
};

enum {
    TO_ADD, TO_SUB, TO_DIV, TO_FLOORDIV, TO_MUL, TO_MOD, TO_POW, TO_TILDE,
    TO_LBRACKET, TO_RBRACKET, TO_LPAREN, TO_RPAREN, TO_LBRACE, TO_RBRACE,
    TO_EQ, TO_NE, TO_GT, TO_GTEQ, TO_LT, TO_LTEQ, TO_ASSIGN, TO_DOT,
    TO_COLON, TO_PIPE, TO_COMMA, TO_SEMICOLON,
};

typedef struct tok {
    uint8_t type;
    int8_t op;
    uint32_t pos;
    const char *s;
    size_t n;
    int64_t i;
    double f;
} tok;

/* Tokenizes t->src. On success *out is an rf_malloc'ed array the caller
 * frees, ending with TK_EOF. */
rf_status tmpl_lex(rf_tmpl *t, tok **out, uint32_t *n, rf_error *err);

#endif
