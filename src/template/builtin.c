/*
 * builtin.c - the built-in chat templates of the common families (chatml,
 * llama2, llama3, mistral, gemma, phi3, deepseek), detection of a
 * template's family from its special-token markers, and the loader that
 * falls back to a built-in template when a model's own template does not
 * parse or does not render a probe conversation, so chat keeps working
 * (with a warning saying why).
 *
 * The built-ins accept message content as a string or as a list of
 * OpenAI-style parts ({"type": "text", "text": ...}), and fold a leading
 * system message into the first user turn where the format has no system
 * role.
 */
#define _GNU_SOURCE /* memmem */
#include <jansson.h>
#include <string.h>

#include "template/tmpl-impl.h"

/* Content as text: a string, or the text parts of a list joined. */
#define TEXT_MACRO                                                                          \
    "{%- macro text(c) -%}{%- if c is string -%}{{ c }}{%- elif c is iterable -%}"          \
    "{%- for p in c -%}{%- if p is mapping and p.type == 'text' -%}{{ p.text }}"            \
    "{%- elif p is string -%}{{ p }}{%- endif -%}{%- endfor -%}{%- endif -%}{%- endmacro -%}\n"

static const char chatml[] = TEXT_MACRO
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message.role + '\\n' + text(message.content) + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}";

static const char llama2[] = TEXT_MACRO
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set sys = '<<SYS>>\\n' + text(messages[0].content) + '\\n<</SYS>>\\n\\n' -%}"
    "{%- set msgs = messages[1:] -%}"
    "{%- else -%}{%- set sys = '' -%}{%- set msgs = messages -%}{%- endif -%}"
    "{%- for message in msgs -%}"
    "{%- if message.role == 'user' -%}"
    "{{ bos_token + '[INST] ' + (sys if loop.first else '') + text(message.content) | trim + ' [/INST]' }}"
    "{%- elif message.role == 'assistant' -%}"
    "{{ ' ' + text(message.content) | trim + ' ' + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}";

static const char llama3[] = TEXT_MACRO
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{ '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' + text(message.content) | trim + '<|eot_id|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif -%}";

static const char mistral[] = TEXT_MACRO
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set sys = text(messages[0].content) + '\\n\\n' -%}{%- set msgs = messages[1:] -%}"
    "{%- else -%}{%- set sys = '' -%}{%- set msgs = messages -%}{%- endif -%}"
    "{{- bos_token -}}"
    "{%- for message in msgs -%}"
    "{%- if message.role == 'user' -%}"
    "{{ '[INST] ' + (sys if loop.first else '') + text(message.content) + '[/INST]' }}"
    "{%- elif message.role == 'assistant' -%}"
    "{{ text(message.content) + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}";

static const char gemma[] = TEXT_MACRO
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set sys = text(messages[0].content) + '\\n\\n' -%}{%- set msgs = messages[1:] -%}"
    "{%- else -%}{%- set sys = '' -%}{%- set msgs = messages -%}{%- endif -%}"
    "{{- bos_token -}}"
    "{%- for message in msgs -%}"
    "{%- set role = 'model' if message.role == 'assistant' else message.role -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (sys if loop.first else '') + text(message.content) | trim + '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}";

static const char phi3[] = TEXT_MACRO
    "{%- for message in messages -%}"
    "{%- if message.role == 'system' -%}{{ '<|system|>\n' }}"
    "{%- elif message.role == 'user' -%}{{ '<|user|>\n' }}"
    "{%- elif message.role == 'assistant' -%}{{ '<|assistant|>\n' }}"
    "{%- else -%}{{ '<|' + message.role + '|>\n' }}{%- endif -%}"
    "{{ text(message.content) + '<|end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- else -%}{{ eos_token }}{%- endif -%}";

static const char deepseek[] = TEXT_MACRO
    "{%- set ns = namespace(sys='') -%}"
    "{%- for message in messages if message.role == 'system' -%}"
    "{%- set ns.sys = ns.sys + text(message.content) -%}"
    "{%- endfor -%}"
    "{{- bos_token + ns.sys -}}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'user' -%}{{ '<｜User｜>' + text(message.content) }}"
    "{%- elif message.role == 'assistant' -%}{{ '<｜Assistant｜>' + text(message.content) + '<｜end▁of▁sentence｜>' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<｜Assistant｜>' }}{%- endif -%}";

typedef struct family {
    const char *name;
    const char *text;
    const char *markers[2]; /* all must be present */
} family;

/* Detection order matters: llama2 and mistral share [INST]. */
static const family families[] = {
    {"chatml", chatml, {"<|im_start|>", NULL}},
    {"llama3", llama3, {"<|start_header_id|>", NULL}},
    {"gemma", gemma, {"<start_of_turn>", NULL}},
    {"deepseek", deepseek, {"<｜User｜>", NULL}},
    {"phi3", phi3, {"<|user|>", NULL}},
    {"llama2", llama2, {"[INST]", "<<SYS>>"}},
    {"mistral", mistral, {"[INST]", NULL}},
};

const char *rf_tmpl_builtin(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < RF_ARRAY_LEN(families); i++)
        if (!strcmp(families[i].name, name)) return families[i].text;
    return NULL;
}

const char *rf_tmpl_family_name(int i) {
    return i >= 0 && (size_t)i < RF_ARRAY_LEN(families) ? families[i].name : NULL;
}

/* GGUF general.architecture prefixes and the usual family of their chat
 * format, for models that ship no template. */
static const struct {
    const char *arch_prefix;
    const char *family;
} arch_families[] = {
    {"gemma", "gemma"}, {"phi3", "phi3"},        {"qwen", "chatml"},  {"deepseek", "deepseek"},
    {"mistral", "mistral"}, {"llama", "llama3"}, {"smollm", "chatml"}, {"olmo", "chatml"},
};

static const char *family_of_hint(const char *hint) {
    if (!hint) return NULL;
    if (rf_tmpl_builtin(hint)) return hint;
    for (size_t i = 0; i < RF_ARRAY_LEN(arch_families); i++) {
        size_t n = strlen(arch_families[i].arch_prefix);
        if (!strncmp(hint, arch_families[i].arch_prefix, n)) return arch_families[i].family;
    }
    return NULL;
}

const char *rf_tmpl_detect_family(const char *src, size_t len) {
    if (!src) return NULL;
    for (size_t i = 0; i < RF_ARRAY_LEN(families); i++) {
        bool all = true;
        for (int k = 0; k < 2 && families[i].markers[k]; k++) {
            const char *m = families[i].markers[k];
            if (!memmem(src, len, m, strlen(m))) all = false;
        }
        if (all) return families[i].name;
    }
    return NULL;
}

/* user, assistant, user: what every chat template must accept. */
static const char probe_ctx[] =
    "{\"messages\": ["
    "{\"role\": \"user\", \"content\": \"Hello\"},"
    "{\"role\": \"assistant\", \"content\": \"Hi! How can I help?\"},"
    "{\"role\": \"user\", \"content\": \"What is 2+2?\"}],"
    "\"tools\": null, \"documents\": null, \"add_generation_prompt\": true,"
    "\"bos_token\": \"\", \"eos_token\": \"\"}";

static rf_status try_template(const char *src, size_t len, rf_tmpl **out, rf_error *err) {
    rf_tmpl *t;
    rf_status st = rf_tmpl_parse(src, len, &t, err);
    if (st != RF_OK) return st;
    char *text = NULL;
    rf_tmpl_opts opts = {.has_now = true, .now = 0};
    st = rf_tmpl_render_json(t, probe_ctx, sizeof probe_ctx - 1, &opts, &text, NULL, err);
    rf_free(text);
    if (st != RF_OK) {
        rf_tmpl_free(t);
        return st;
    }
    *out = t;
    return RF_OK;
}

rf_status rf_tmpl_load_with_fallback(const char *src, size_t len, const char *family_hint,
                                     rf_tmpl **out, const char **family_out, rf_error *err) {
    *out = NULL;
    if (family_out) *family_out = NULL;
    rf_error e = {0};
    const char *fam = NULL;
    if (src) {
        if (try_template(src, len, out, &e) == RF_OK) {
            if (family_out) *family_out = "model";
            return RF_OK;
        }
        fam = rf_tmpl_detect_family(src, len);
    }
    if (!fam) fam = family_of_hint(family_hint);
    if (!fam) fam = "chatml";
    if (src)
        RF_LOGW("the model's chat template cannot be used (%s); using the built-in '%s' template",
                e.msg, fam);
    else
        RF_LOGW("the model has no chat template; using the built-in '%s' template", fam);
    const char *text = rf_tmpl_builtin(fam);
    rf_status st = rf_tmpl_parse(text, strlen(text), out, err);
    if (st != RF_OK) return st;
    if (family_out) *family_out = fam;
    return RF_OK;
}
