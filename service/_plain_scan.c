/*
 * service._plain_scan: one pass over the text of a /v1/predict or /v1/explain body of the
 * plain shape, straight into a float64 array, without a Python object per gene or value.
 *
 * The plain shape (everything else is left to the general parser of service/bodies.py,
 * which gives the same answers and every error):
 *
 *   {"samples": {"<id>": {"<gene>": <number or null>, ...}, ...}, "<option>": <scalar>, ...}
 *
 * - every sample lists the same genes in the same order (whole profiles and batches do);
 * - keys hold no backslash and no control character (no escapes to decode);
 * - values are JSON numbers or null; options are strings, numbers, true, false or null.
 *
 * scan(body, max_samples), body any bytes-like object, returns None for any other body, and
 * for bodies the general parser refuses (no samples, an empty sample, more than max_samples
 * samples, a number beyond the float range...), so every refusal keeps its one wording.
 * Otherwise a tuple:
 *
 *   (sample_ids: list[str], gene_keys: bytes, n_genes: int, values: bytearray,
 *    option_spans: list[tuple[int, int]])
 *
 * gene_keys is the first sample's keys as sent, each followed by '"' (a byte no such key
 * holds), UTF-8 not yet checked; values the n_samples x n_genes float64 cells in sample
 * order (NaN for null); option_spans the [start, end) of each top-level "key": value member
 * other than "samples", for the caller to parse.
 *
 * Numbers are converted exactly as Python's float() converts their text (correctly
 * rounded): Clinger's fast path when at most 15 significant digits and a power of ten of
 * at most 22 make it exact, PyOS_string_to_double otherwise. A JSON integer becomes the
 * float of the integer (so "-0" is 0.0), as float(int(text)) would.
 *
 * Every read is bounded by the end of the text; nothing depends on the NUL after a bytes
 * object's data.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define FAST_DIGITS 15      /* significant digits below 2^53: exact as a double */
#define FAST_POWER 22       /* 10^22 is the largest power of ten exact as a double */
#define MAX_NUMBER_TEXT 400 /* longer numbers are left to the general parser */
#define MAX_EXPONENT_DIGITS 5

static const double POWERS_OF_TEN[FAST_POWER + 1] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

typedef struct {
    const unsigned char *at;
    const unsigned char *end;
} Cursor;

/* A growable buffer of bytes, doubled as needed. */
typedef struct {
    unsigned char *data;
    size_t size;
    size_t capacity;
} Buffer;

static int buffer_reserve(Buffer *buffer, size_t extra) {
    if (extra <= buffer->capacity - buffer->size) {
        return 0;
    }
    if (extra > (SIZE_MAX / 2) - buffer->size) {
        return -1;
    }
    size_t wanted = buffer->size + extra;
    size_t capacity = buffer->capacity ? buffer->capacity : 4096;
    while (capacity < wanted) {
        capacity *= 2;
    }
    unsigned char *data = PyMem_Realloc(buffer->data, capacity);
    if (data == NULL) {
        return -1;
    }
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

static int buffer_append(Buffer *buffer, const void *bytes, size_t size) {
    if (size == 0) {
        return 0;
    }
    if (buffer_reserve(buffer, size) < 0) {
        return -1;
    }
    memcpy(buffer->data + buffer->size, bytes, size);
    buffer->size += size;
    return 0;
}

static void skip_space(Cursor *c) {
    while (c->at < c->end) {
        unsigned char ch = *c->at;
        if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
            return;
        }
        c->at++;
    }
}

/* The next byte after white space is ch: consume it. */
static int take(Cursor *c, unsigned char ch) {
    skip_space(c);
    if (c->at < c->end && *c->at == ch) {
        c->at++;
        return 0;
    }
    return -1;
}

/* After an object's member (white space allowed): 1 at a ',' (another member follows), 0 at
 * the object's closing '}', -1 at anything else. */
static int next_member(Cursor *c) {
    skip_space(c);
    if (c->at >= c->end) {
        return -1;
    }
    unsigned char ch = *c->at++;
    if (ch == ',') {
        return 1;
    }
    return ch == '}' ? 0 : -1;
}

/* The bytes a plain string stops at: its closing quote, a backslash, a control character. */
static unsigned char STRING_STOP[256];

static void fill_string_stops(void) {
    for (int ch = 0; ch < 0x20; ch++) {
        STRING_STOP[ch] = 1;
    }
    STRING_STOP['"'] = 1;
    STRING_STOP['\\'] = 1;
}

/* A string with no escape and no control character at the cursor (after white space):
 * its content in [*start, *start + *size), the cursor after its closing quote. */
static int plain_string(Cursor *c, const unsigned char **start, Py_ssize_t *size) {
    if (take(c, '"') < 0) {
        return -1;
    }
    const unsigned char *first = c->at;
    const unsigned char *at = first;
    const unsigned char *end = c->end;
    while (at < end && !STRING_STOP[*at]) {
        at++;
    }
    if (at >= end || *at != '"') {
        return -1;
    }
    *start = first;
    *size = at - first;
    c->at = at + 1;
    return 0;
}

static int is_digit(const Cursor *c) {
    return c->at < c->end && *c->at >= '0' && *c->at <= '9';
}

/* The text [start, stop) of a valid JSON number, converted as float() converts it. */
static int slow_number(const unsigned char *start, const unsigned char *stop, double *out) {
    char text[MAX_NUMBER_TEXT + 1];
    size_t size = (size_t)(stop - start);
    if (size > MAX_NUMBER_TEXT) {
        return -1;
    }
    memcpy(text, start, size);
    text[size] = '\0';
    char *parsed_to = NULL;
    double value = PyOS_string_to_double(text, &parsed_to, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (parsed_to != text + size) {
        return -1;
    }
    *out = value;
    return 0;
}

/* A JSON number or null at the cursor (after white space); NaN for null. -1 for anything
 * else, and for a number beyond the float range. */
static int number_or_null(Cursor *c, double *out) {
    skip_space(c);
    const unsigned char *start = c->at;
    if (c->end - c->at >= 4 && memcmp(c->at, "null", 4) == 0) {
        c->at += 4;
        *out = Py_NAN;
        return 0;
    }
    int negative = 0;
    if (c->at < c->end && *c->at == '-') {
        negative = 1;
        c->at++;
    }
    if (!is_digit(c)) {
        return -1;
    }
    uint64_t mantissa = 0;
    int significant = 0; /* digits from the first non-zero one */
    int fraction = 0;    /* digits after the point */
    int integer = 1;
    if (*c->at == '0') {
        c->at++;
    } else {
        while (is_digit(c)) {
            if (significant < FAST_DIGITS + 1) {
                mantissa = mantissa * 10 + (uint64_t)(*c->at - '0');
            }
            significant++;
            if (++c->at - start > MAX_NUMBER_TEXT) {
                return -1;
            }
        }
    }
    if (c->at < c->end && *c->at == '.') {
        integer = 0;
        c->at++;
        if (!is_digit(c)) {
            return -1;
        }
        while (is_digit(c)) {
            if (significant < FAST_DIGITS + 1) {
                mantissa = mantissa * 10 + (uint64_t)(*c->at - '0');
                fraction++;
            }
            if (significant || *c->at != '0') {
                significant++;
            }
            if (++c->at - start > MAX_NUMBER_TEXT) {
                return -1;
            }
        }
    }
    int exponent = 0;
    int exponent_fits = 1;
    if (c->at < c->end && (*c->at == 'e' || *c->at == 'E')) {
        integer = 0;
        c->at++;
        int exponent_negative = 0;
        if (c->at < c->end && (*c->at == '+' || *c->at == '-')) {
            exponent_negative = *c->at == '-';
            c->at++;
        }
        if (!is_digit(c)) {
            return -1;
        }
        int exponent_digits = 0;
        while (is_digit(c)) {
            if (++exponent_digits <= MAX_EXPONENT_DIGITS) {
                exponent = exponent * 10 + (*c->at - '0');
            } else {
                exponent_fits = 0;
            }
            if (++c->at - start > MAX_NUMBER_TEXT) {
                return -1;
            }
        }
        if (exponent_negative) {
            exponent = -exponent;
        }
    }
    if (integer && mantissa == 0) {
        *out = 0.0; /* float(int("-0")) is 0.0 */
        return 0;
    }
    int power = exponent - fraction;
    if (significant <= FAST_DIGITS && exponent_fits && power >= -FAST_POWER &&
        power <= FAST_POWER) {
        double value = (double)mantissa;
        value = power < 0 ? value / POWERS_OF_TEN[-power] : value * POWERS_OF_TEN[power];
        *out = negative ? -value : value;
        return 0;
    }
    double value;
    if (slow_number(start, c->at, &value) < 0 || !isfinite(value)) {
        return -1;
    }
    *out = value;
    return 0;
}

/* The value of an option member: a string (escapes allowed: the caller parses it) or a
 * bare scalar word (a number, true, false, null; checked by the caller's parser). */
static int option_value(Cursor *c) {
    skip_space(c);
    if (c->at >= c->end) {
        return -1;
    }
    if (*c->at == '"') {
        c->at++;
        while (c->at < c->end) {
            unsigned char ch = *c->at++;
            if (ch == '"') {
                return 0;
            }
            if (ch == '\\') {
                if (c->at >= c->end) {
                    return -1;
                }
                c->at++;
            }
        }
        return -1;
    }
    const unsigned char *start = c->at;
    while (c->at < c->end) {
        unsigned char ch = *c->at;
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '-' || ch == '+' || ch == '.')) {
            break;
        }
        c->at++;
    }
    return c->at > start ? 0 : -1;
}

typedef struct {
    Buffer values;    /* doubles */
    Buffer positions; /* Py_ssize_t pairs: each first-sample key's offset and size */
    Py_ssize_t n_genes;
    Py_ssize_t keys_size; /* the first sample's keys, each with one byte more */
    PyObject *sample_ids;
} Samples;

/* The first sample's genes: their keys' places are recorded. */
static int first_sample(Cursor *c, const unsigned char *text, Samples *s) {
    skip_space(c);
    if (c->at < c->end && *c->at == '}') {
        return -1; /* an empty sample */
    }
    for (;;) {
        const unsigned char *key;
        Py_ssize_t size;
        double value;
        if (plain_string(c, &key, &size) < 0 || take(c, ':') < 0 ||
            number_or_null(c, &value) < 0) {
            return -1;
        }
        if (buffer_reserve(&s->positions, 2 * sizeof(Py_ssize_t)) < 0 ||
            buffer_reserve(&s->values, sizeof value) < 0) {
            return -1;
        }
        Py_ssize_t *position = (Py_ssize_t *)(s->positions.data + s->positions.size);
        position[0] = key - text;
        position[1] = size;
        s->positions.size += 2 * sizeof(Py_ssize_t);
        memcpy(s->values.data + s->values.size, &value, sizeof value);
        s->values.size += sizeof value;
        s->keys_size += size + 1;
        s->n_genes++;
        int more = next_member(c);
        if (more <= 0) {
            return more;
        }
    }
}

/* The first sample's keys, each followed by '"'. */
static PyObject *gene_keys(const unsigned char *text, const Samples *s) {
    PyObject *keys = PyBytes_FromStringAndSize(NULL, s->keys_size);
    if (keys == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(keys);
    const Py_ssize_t *positions = (const Py_ssize_t *)s->positions.data;
    for (Py_ssize_t j = 0; j < s->n_genes; j++) {
        Py_ssize_t size = positions[2 * j + 1];
        memcpy(out, text + positions[2 * j], (size_t)size);
        out[size] = '"';
        out += size + 1;
    }
    return keys;
}

/* A later sample: the same keys as the first, in the same order. */
static int next_sample(Cursor *c, const unsigned char *text, Samples *s) {
    const Py_ssize_t *positions = (const Py_ssize_t *)s->positions.data;
    if (buffer_reserve(&s->values, (size_t)s->n_genes * sizeof(double)) < 0) {
        return -1;
    }
    for (Py_ssize_t j = 0; j < s->n_genes; j++) {
        Py_ssize_t size = positions[2 * j + 1];
        if (take(c, '"') < 0 || c->end - c->at < size + 1 ||
            memcmp(c->at, text + positions[2 * j], (size_t)size) != 0 || c->at[size] != '"') {
            return -1;
        }
        c->at += size + 1;
        double value;
        if (take(c, ':') < 0 || number_or_null(c, &value) < 0) {
            return -1;
        }
        memcpy(s->values.data + s->values.size, &value, sizeof value);
        s->values.size += sizeof value;
        if (take(c, j + 1 < s->n_genes ? ',' : '}') < 0) {
            return -1;
        }
    }
    return 0;
}

/* The value of "samples": an object of samples, each an object of genes. */
static int samples_object(Cursor *c, const unsigned char *text, Py_ssize_t max_samples,
                          Samples *s) {
    if (take(c, '{') < 0) {
        return -1;
    }
    skip_space(c);
    if (c->at < c->end && *c->at == '}') {
        return -1; /* no sample */
    }
    for (Py_ssize_t n = 0;; n++) {
        const unsigned char *id;
        Py_ssize_t size;
        if (n >= max_samples || plain_string(c, &id, &size) < 0 || take(c, ':') < 0 ||
            take(c, '{') < 0) {
            return -1;
        }
        PyObject *sample_id = PyUnicode_DecodeUTF8((const char *)id, size, "strict");
        if (sample_id == NULL) {
            PyErr_Clear();
            return -1;
        }
        int failed = PyList_Append(s->sample_ids, sample_id);
        Py_DECREF(sample_id);
        if (failed < 0) {
            PyErr_Clear();
            return -1;
        }
        if ((n == 0 ? first_sample(c, text, s) : next_sample(c, text, s)) < 0) {
            return -1;
        }
        int more = next_member(c);
        if (more <= 0) {
            return more;
        }
    }
}

/* The whole body: an object with "samples" once and option members. */
static int body(Cursor *c, const unsigned char *text, Py_ssize_t max_samples, Samples *s,
                PyObject *option_spans) {
    int seen_samples = 0;
    if (take(c, '{') < 0) {
        return -1;
    }
    for (;;) {
        skip_space(c);
        const unsigned char *member = c->at;
        const unsigned char *key;
        Py_ssize_t size;
        if (plain_string(c, &key, &size) < 0 || take(c, ':') < 0) {
            return -1;
        }
        if (size == 7 && memcmp(key, "samples", 7) == 0) {
            if (seen_samples || samples_object(c, text, max_samples, s) < 0) {
                return -1;
            }
            seen_samples = 1;
        } else {
            if (option_value(c) < 0) {
                return -1;
            }
            PyObject *span = Py_BuildValue("(nn)", member - text, c->at - text);
            if (span == NULL || PyList_Append(option_spans, span) < 0) {
                Py_XDECREF(span);
                PyErr_Clear();
                return -1;
            }
            Py_DECREF(span);
        }
        int more = next_member(c);
        if (more < 0) {
            return -1;
        }
        if (more == 0) {
            break;
        }
    }
    skip_space(c);
    return seen_samples && c->at == c->end ? 0 : -1;
}

static PyObject *scan(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer view;
    Py_ssize_t max_samples;
    if (!PyArg_ParseTuple(args, "y*n:scan", &view, &max_samples)) {
        return NULL;
    }
    /* read while holding the GIL, so the buffer cannot change under the scan */
    const unsigned char *text = (const unsigned char *)view.buf;
    Cursor cursor = {text, text + view.len};
    Samples samples = {{NULL, 0, 0}, {NULL, 0, 0}, 0, 0, PyList_New(0)};
    PyObject *option_spans = PyList_New(0);
    PyObject *result = NULL;
    if (samples.sample_ids == NULL || option_spans == NULL) {
        goto done;
    }
    if (body(&cursor, text, max_samples, &samples, option_spans) < 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *keys = gene_keys(text, &samples);
    PyObject *values = PyByteArray_FromStringAndSize((const char *)samples.values.data,
                                                     (Py_ssize_t)samples.values.size);
    if (keys != NULL && values != NULL) {
        result = Py_BuildValue("(OOnOO)", samples.sample_ids, keys, samples.n_genes, values,
                               option_spans);
    }
    Py_XDECREF(keys);
    Py_XDECREF(values);
done:
    PyBuffer_Release(&view);
    PyMem_Free(samples.values.data);
    PyMem_Free(samples.positions.data);
    Py_XDECREF(samples.sample_ids);
    Py_XDECREF(option_spans);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(body, max_samples) -> (sample_ids, gene_keys, n_genes, values, option_spans) or "
     "None: a body of the plain shape in one pass (see the module's source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_plain_scan",
    "One-pass reading of plain /v1/predict and /v1/explain bodies (see service.plain_bodies).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__plain_scan(void) {
    fill_string_stops();
    return PyModule_Create(&module);
}
