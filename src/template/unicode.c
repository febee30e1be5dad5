/*
 * unicode.c - the little Unicode the template module needs to act like
 * Python's str: lenient UTF-8 decoding, whitespace (str.isspace, the set
 * Python's strip()/split() and the lexer's \s use), printability (for
 * repr()), character classes and case mapping.
 *
 * Classes and simple case mappings come from utf8proc's tables (Unicode
 * 15; Python 3.11 uses 14, which differs only in code points new in 15).
 * Python's upper()/lower() also apply the unconditional multi-character
 * mappings of SpecialCasing.txt (ß -> SS, ﬁ -> FI, ᾳ -> ΑΙ, İ -> i̇): they
 * are in full_upper/full_lower below; final sigma is handled by the caller
 * (methods.c).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

#include "template/tmpl-impl.h"

/* ---- UTF-8 ------------------------------------------------------------- */

uint32_t u8_next(const char *s, size_t n, size_t *i) {
    const unsigned char *p = (const unsigned char *)s;
    size_t k = *i;
    uint32_t c = p[k];
    if (c < 0x80) { *i = k + 1; return c; }
    int len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (len == 0 || k + (size_t)len > n) { *i = k + 1; return c; }
    uint32_t cp = len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (int j = 1; j < len; j++) {
        unsigned char cc = p[k + (size_t)j];
        if ((cc & 0xc0) != 0x80) { *i = k + 1; return c; }
        cp = (cp << 6) | (cc & 0x3f);
    }
    /* reject overlong forms and values past U+10FFFF; surrogates are
     * accepted (strings built from "\ud800" escapes carry them, as
     * Python's str does) */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
        *i = k + 1;
        return c;
    }
    *i = k + (size_t)len;
    return cp;
}

int u8_put(char *dst, uint32_t cp) {
    unsigned char *d = (unsigned char *)dst;
    if (cp < 0x80) { d[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        d[0] = (unsigned char)(0xc0 | (cp >> 6));
        d[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (unsigned char)(0xe0 | (cp >> 12));
        d[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (unsigned char)(0xf0 | (cp >> 18));
    d[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Strict check (no surrogates, no overlongs): template sources must be text
 * Python could have decoded. */
bool u8_valid(const char *s, size_t n, size_t *bad_at) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) { i++; continue; }
        size_t j = i;
        uint32_t cp = u8_next(s, n, &j);
        if (j == i + 1 || (cp >= 0xd800 && cp <= 0xdfff)) {
            if (bad_at) *bad_at = i;
            return false;
        }
        i = j;
    }
    return true;
}

size_t u8_count(const char *s, size_t n) {
    size_t i = 0, k = 0;
    while (i < n) {
        u8_next(s, n, &i);
        k++;
    }
    return k;
}

/* ---- character classes -------------------------------------------------- */

bool u_isspace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

static utf8proc_category_t cat(uint32_t c) {
    return c > 0x10ffff ? UTF8PROC_CATEGORY_CN : utf8proc_category((utf8proc_int32_t)c);
}

/* repr() escapes controls, format characters, surrogates, private use,
 * unassigned code points and separators other than the space. */
bool u_isprintable(uint32_t c) {
    if (c < 0x7f) return c >= 0x20;
    switch (cat(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return false;
    default: return true;
    }
}

uint32_t u_upper(uint32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
    return c > 0x10ffff ? c : (uint32_t)utf8proc_toupper((utf8proc_int32_t)c);
}

uint32_t u_lower(uint32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    return c > 0x10ffff ? c : (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
}

uint32_t u_title(uint32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
    return c > 0x10ffff ? c : (uint32_t)utf8proc_totitle((utf8proc_int32_t)c);
}

/* Other_Lowercase letters without a case mapping (ª, º, modifier letters). */
static bool other_lower(uint32_t c) {
    static const uint32_t r[][2] = {
        {0xaa, 0xaa},     {0xba, 0xba},     {0x2b0, 0x2b8},   {0x2c0, 0x2c1},   {0x2e0, 0x2e4},
        {0x345, 0x345},   {0x37a, 0x37a},   {0x1d2c, 0x1d6a}, {0x1d78, 0x1d78}, {0x1d9b, 0x1dbf},
        {0x2071, 0x2071}, {0x207f, 0x207f}, {0x2090, 0x209c}, {0x2c7c, 0x2c7d}, {0xa69c, 0xa69d},
        {0xa770, 0xa770}, {0xa7f8, 0xa7f9}, {0xab5c, 0xab5f},
    };
    if (c < 0xaa) return false;
    for (size_t i = 0; i < RF_ARRAY_LEN(r); i++)
        if (c >= r[i][0] && c <= r[i][1]) return true;
    return false;
}

bool u_istitle(uint32_t c) { return c >= 0x80 && cat(c) == UTF8PROC_CATEGORY_LT; }

bool u_isupper(uint32_t c) {
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_LU || (k != UTF8PROC_CATEGORY_LT && u_lower(c) != c);
}

bool u_islower(uint32_t c) {
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_LL || other_lower(c) ||
           (k != UTF8PROC_CATEGORY_LT && u_upper(c) != c);
}

bool u_iscased(uint32_t c) { return u_istitle(c) || u_isupper(c) || u_islower(c); }

bool u_isalpha(uint32_t c) {
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    utf8proc_category_t k = cat(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

bool u_isdecimal(uint32_t c) { return (c >= '0' && c <= '9') || cat(c) == UTF8PROC_CATEGORY_ND; }

/* Python's isdigit: decimals plus the digits with a Numeric_Type of
 * Digit (superscripts, subscripts, circled digits, ...). */
bool u_isdigit(uint32_t c) {
    if (u_isdecimal(c)) return true;
    static const uint32_t digits[][2] = {
        {0xb2, 0xb3},       {0xb9, 0xb9},       {0x1369, 0x1371},   {0x19da, 0x19da},
        {0x2070, 0x2070},   {0x2074, 0x2079},   {0x2080, 0x2089},   {0x2460, 0x2468},
        {0x2474, 0x247c},   {0x2488, 0x2490},   {0x24ea, 0x24ea},   {0x24f5, 0x24fd},
        {0x24ff, 0x24ff},   {0x2776, 0x277e},   {0x2780, 0x2788},   {0x278a, 0x2792},
        {0x1f100, 0x1f10a},
    };
    for (size_t i = 0; i < RF_ARRAY_LEN(digits); i++)
        if (c >= digits[i][0] && c <= digits[i][1]) return true;
    return false;
}

bool u_isnumeric(uint32_t c) {
    utf8proc_category_t k = cat(c);
    return u_isdigit(c) || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

/* ---- multi-character case mappings (SpecialCasing.txt, unconditional) --- */

typedef struct full_map {
    uint32_t cp;
    const char *upper, *title; /* UTF-8 */
} full_map;

/* Every code point whose upper or title case is longer than one code
 * point (generated from SpecialCasing.txt data, Unicode 14), in order. */
static const full_map full_upper[] = {
    {0xdf, "\x53\x53", "\x53\x73"},
    {0x149, "\xca\xbc\x4e", "\xca\xbc\x4e"},
    {0x1f0, "\x4a\xcc\x8c", "\x4a\xcc\x8c"},
    {0x390, "\xce\x99\xcc\x88\xcc\x81", "\xce\x99\xcc\x88\xcc\x81"},
    {0x3b0, "\xce\xa5\xcc\x88\xcc\x81", "\xce\xa5\xcc\x88\xcc\x81"},
    {0x587, "\xd4\xb5\xd5\x92", "\xd4\xb5\xd6\x82"},
    {0x1e96, "\x48\xcc\xb1", "\x48\xcc\xb1"},
    {0x1e97, "\x54\xcc\x88", "\x54\xcc\x88"},
    {0x1e98, "\x57\xcc\x8a", "\x57\xcc\x8a"},
    {0x1e99, "\x59\xcc\x8a", "\x59\xcc\x8a"},
    {0x1e9a, "\x41\xca\xbe", "\x41\xca\xbe"},
    {0x1f50, "\xce\xa5\xcc\x93", "\xce\xa5\xcc\x93"},
    {0x1f52, "\xce\xa5\xcc\x93\xcc\x80", "\xce\xa5\xcc\x93\xcc\x80"},
    {0x1f54, "\xce\xa5\xcc\x93\xcc\x81", "\xce\xa5\xcc\x93\xcc\x81"},
    {0x1f56, "\xce\xa5\xcc\x93\xcd\x82", "\xce\xa5\xcc\x93\xcd\x82"},
    {0x1f80, "\xe1\xbc\x88\xce\x99", "\xe1\xbe\x88"},
    {0x1f81, "\xe1\xbc\x89\xce\x99", "\xe1\xbe\x89"},
    {0x1f82, "\xe1\xbc\x8a\xce\x99", "\xe1\xbe\x8a"},
    {0x1f83, "\xe1\xbc\x8b\xce\x99", "\xe1\xbe\x8b"},
    {0x1f84, "\xe1\xbc\x8c\xce\x99", "\xe1\xbe\x8c"},
    {0x1f85, "\xe1\xbc\x8d\xce\x99", "\xe1\xbe\x8d"},
    {0x1f86, "\xe1\xbc\x8e\xce\x99", "\xe1\xbe\x8e"},
    {0x1f87, "\xe1\xbc\x8f\xce\x99", "\xe1\xbe\x8f"},
    {0x1f88, "\xe1\xbc\x88\xce\x99", "\xe1\xbe\x88"},
    {0x1f89, "\xe1\xbc\x89\xce\x99", "\xe1\xbe\x89"},
    {0x1f8a, "\xe1\xbc\x8a\xce\x99", "\xe1\xbe\x8a"},
    {0x1f8b, "\xe1\xbc\x8b\xce\x99", "\xe1\xbe\x8b"},
    {0x1f8c, "\xe1\xbc\x8c\xce\x99", "\xe1\xbe\x8c"},
    {0x1f8d, "\xe1\xbc\x8d\xce\x99", "\xe1\xbe\x8d"},
    {0x1f8e, "\xe1\xbc\x8e\xce\x99", "\xe1\xbe\x8e"},
    {0x1f8f, "\xe1\xbc\x8f\xce\x99", "\xe1\xbe\x8f"},
    {0x1f90, "\xe1\xbc\xa8\xce\x99", "\xe1\xbe\x98"},
    {0x1f91, "\xe1\xbc\xa9\xce\x99", "\xe1\xbe\x99"},
    {0x1f92, "\xe1\xbc\xaa\xce\x99", "\xe1\xbe\x9a"},
    {0x1f93, "\xe1\xbc\xab\xce\x99", "\xe1\xbe\x9b"},
    {0x1f94, "\xe1\xbc\xac\xce\x99", "\xe1\xbe\x9c"},
    {0x1f95, "\xe1\xbc\xad\xce\x99", "\xe1\xbe\x9d"},
    {0x1f96, "\xe1\xbc\xae\xce\x99", "\xe1\xbe\x9e"},
    {0x1f97, "\xe1\xbc\xaf\xce\x99", "\xe1\xbe\x9f"},
    {0x1f98, "\xe1\xbc\xa8\xce\x99", "\xe1\xbe\x98"},
    {0x1f99, "\xe1\xbc\xa9\xce\x99", "\xe1\xbe\x99"},
    {0x1f9a, "\xe1\xbc\xaa\xce\x99", "\xe1\xbe\x9a"},
    {0x1f9b, "\xe1\xbc\xab\xce\x99", "\xe1\xbe\x9b"},
    {0x1f9c, "\xe1\xbc\xac\xce\x99", "\xe1\xbe\x9c"},
    {0x1f9d, "\xe1\xbc\xad\xce\x99", "\xe1\xbe\x9d"},
    {0x1f9e, "\xe1\xbc\xae\xce\x99", "\xe1\xbe\x9e"},
    {0x1f9f, "\xe1\xbc\xaf\xce\x99", "\xe1\xbe\x9f"},
    {0x1fa0, "\xe1\xbd\xa8\xce\x99", "\xe1\xbe\xa8"},
    {0x1fa1, "\xe1\xbd\xa9\xce\x99", "\xe1\xbe\xa9"},
    {0x1fa2, "\xe1\xbd\xaa\xce\x99", "\xe1\xbe\xaa"},
    {0x1fa3, "\xe1\xbd\xab\xce\x99", "\xe1\xbe\xab"},
    {0x1fa4, "\xe1\xbd\xac\xce\x99", "\xe1\xbe\xac"},
    {0x1fa5, "\xe1\xbd\xad\xce\x99", "\xe1\xbe\xad"},
    {0x1fa6, "\xe1\xbd\xae\xce\x99", "\xe1\xbe\xae"},
    {0x1fa7, "\xe1\xbd\xaf\xce\x99", "\xe1\xbe\xaf"},
    {0x1fa8, "\xe1\xbd\xa8\xce\x99", "\xe1\xbe\xa8"},
    {0x1fa9, "\xe1\xbd\xa9\xce\x99", "\xe1\xbe\xa9"},
    {0x1faa, "\xe1\xbd\xaa\xce\x99", "\xe1\xbe\xaa"},
    {0x1fab, "\xe1\xbd\xab\xce\x99", "\xe1\xbe\xab"},
    {0x1fac, "\xe1\xbd\xac\xce\x99", "\xe1\xbe\xac"},
    {0x1fad, "\xe1\xbd\xad\xce\x99", "\xe1\xbe\xad"},
    {0x1fae, "\xe1\xbd\xae\xce\x99", "\xe1\xbe\xae"},
    {0x1faf, "\xe1\xbd\xaf\xce\x99", "\xe1\xbe\xaf"},
    {0x1fb2, "\xe1\xbe\xba\xce\x99", "\xe1\xbe\xba\xcd\x85"},
    {0x1fb3, "\xce\x91\xce\x99", "\xe1\xbe\xbc"},
    {0x1fb4, "\xce\x86\xce\x99", "\xce\x86\xcd\x85"},
    {0x1fb6, "\xce\x91\xcd\x82", "\xce\x91\xcd\x82"},
    {0x1fb7, "\xce\x91\xcd\x82\xce\x99", "\xce\x91\xcd\x82\xcd\x85"},
    {0x1fbc, "\xce\x91\xce\x99", "\xe1\xbe\xbc"},
    {0x1fc2, "\xe1\xbf\x8a\xce\x99", "\xe1\xbf\x8a\xcd\x85"},
    {0x1fc3, "\xce\x97\xce\x99", "\xe1\xbf\x8c"},
    {0x1fc4, "\xce\x89\xce\x99", "\xce\x89\xcd\x85"},
    {0x1fc6, "\xce\x97\xcd\x82", "\xce\x97\xcd\x82"},
    {0x1fc7, "\xce\x97\xcd\x82\xce\x99", "\xce\x97\xcd\x82\xcd\x85"},
    {0x1fcc, "\xce\x97\xce\x99", "\xe1\xbf\x8c"},
    {0x1fd2, "\xce\x99\xcc\x88\xcc\x80", "\xce\x99\xcc\x88\xcc\x80"},
    {0x1fd3, "\xce\x99\xcc\x88\xcc\x81", "\xce\x99\xcc\x88\xcc\x81"},
    {0x1fd6, "\xce\x99\xcd\x82", "\xce\x99\xcd\x82"},
    {0x1fd7, "\xce\x99\xcc\x88\xcd\x82", "\xce\x99\xcc\x88\xcd\x82"},
    {0x1fe2, "\xce\xa5\xcc\x88\xcc\x80", "\xce\xa5\xcc\x88\xcc\x80"},
    {0x1fe3, "\xce\xa5\xcc\x88\xcc\x81", "\xce\xa5\xcc\x88\xcc\x81"},
    {0x1fe4, "\xce\xa1\xcc\x93", "\xce\xa1\xcc\x93"},
    {0x1fe6, "\xce\xa5\xcd\x82", "\xce\xa5\xcd\x82"},
    {0x1fe7, "\xce\xa5\xcc\x88\xcd\x82", "\xce\xa5\xcc\x88\xcd\x82"},
    {0x1ff2, "\xe1\xbf\xba\xce\x99", "\xe1\xbf\xba\xcd\x85"},
    {0x1ff3, "\xce\xa9\xce\x99", "\xe1\xbf\xbc"},
    {0x1ff4, "\xce\x8f\xce\x99", "\xce\x8f\xcd\x85"},
    {0x1ff6, "\xce\xa9\xcd\x82", "\xce\xa9\xcd\x82"},
    {0x1ff7, "\xce\xa9\xcd\x82\xce\x99", "\xce\xa9\xcd\x82\xcd\x85"},
    {0x1ffc, "\xce\xa9\xce\x99", "\xe1\xbf\xbc"},
    {0xfb00, "\x46\x46", "\x46\x66"},
    {0xfb01, "\x46\x49", "\x46\x69"},
    {0xfb02, "\x46\x4c", "\x46\x6c"},
    {0xfb03, "\x46\x46\x49", "\x46\x66\x69"},
    {0xfb04, "\x46\x46\x4c", "\x46\x66\x6c"},
    {0xfb05, "\x53\x54", "\x53\x74"},
    {0xfb06, "\x53\x54", "\x53\x74"},
    {0xfb13, "\xd5\x84\xd5\x86", "\xd5\x84\xd5\xb6"},
    {0xfb14, "\xd5\x84\xd4\xb5", "\xd5\x84\xd5\xa5"},
    {0xfb15, "\xd5\x84\xd4\xbb", "\xd5\x84\xd5\xab"},
    {0xfb16, "\xd5\x8e\xd5\x86", "\xd5\x8e\xd5\xb6"},
    {0xfb17, "\xd5\x84\xd4\xbd", "\xd5\x84\xd5\xad"},
};

/* The multi-character upper (title: title case) mapping of c, or NULL. */
const char *u_full_upper(uint32_t c, bool title) {
    size_t lo = 0, hi = RF_ARRAY_LEN(full_upper);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (full_upper[mid].cp < c) lo = mid + 1;
        else hi = mid;
    }
    if (lo < RF_ARRAY_LEN(full_upper) && full_upper[lo].cp == c)
        return title ? full_upper[lo].title : full_upper[lo].upper;
    return NULL;
}

/* İ lowers to i + combining dot above. */
const char *u_full_lower(uint32_t c) { return c == 0x130 ? "i\xcc\x87" : NULL; }
