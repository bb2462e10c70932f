/* The statement key of analysis.fingerprint (KEY_MACRO) in one pass over Arrow buffers.
 *
 * The key folds the contents of plain strings ('abc' -> '') and the values of numbers
 * (2093743 -> 1) so that executions of one query that differ only in their literals share a
 * key; a statement holding one of KEY_UNSAFE's marks is its own key. The macro does it with
 * two RE2 passes, regexp_replace(s, KEY_STRING, '''') and then KEY_NUMBER; this file gives
 * the same bytes with one scan of each statement:
 *
 * - in a statement without the unsafe marks there is no backslash, so KEY_STRING is
 *   '[^']*': quotes pair up from the left, the text between a pair goes, and a last quote
 *   without its pair stays;
 * - KEY_NUMBER, (^|[^A-Za-z0-9_$\x{80}-\x{10FFFF})\]?'])[1-9][0-9]*, on the text after the
 *   strings are folded: a run of digits whose first digit is 1-9 and that starts the text
 *   or follows a character outside that class becomes "1" (the character before it was
 *   matched and written back, so a run after a digit or a closing quote is never one).
 *   The character before is the last byte written: a byte >= 0x80 ends a non-ASCII
 *   character, which the class holds.
 *
 * Tests compare this with the macro on every real log, the sample and generated text.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* what a byte is to the key, looked up once per byte */
enum { PLAIN = 0, QUOTE = 1, DIGIT0 = 2, DIGIT = 3, UNSAFE = 4, PAIR = 5 };
static unsigned char kind[256];
/* the class before a number that keeps it: identifier characters, ) ] ? ' and non-ASCII */
static unsigned char keeps[256];

static void init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        kind[c] = PLAIN;
        keeps[c] = c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c >= '0' && c <= '9') || c == '_' || c == '$' || c == ')' || c == ']' ||
                   c == '?' || c == '\'';
    }
    kind['\''] = QUOTE;
    kind['0'] = DIGIT0;
    for (int c = '1'; c <= '9'; c++)
        kind[c] = DIGIT;
    /* KEY_UNSAFE: " # \ $, and slash-star and dash-dash (PAIR: unsafe when doubled) */
    kind['"'] = kind['#'] = kind['\\'] = kind['$'] = UNSAFE;
    kind['/'] = kind['-'] = PAIR;
}

/* the key of s[0:n] into out (never longer than s); returns its length. The key is written
   as the statement is read; an unsafe mark found on the way makes the statement its own
   key, copied over what was written. */
static int64_t key_of(const unsigned char *s, int64_t n, unsigned char *out)
{
    int64_t o = 0, i = 0;
    while (i < n) {
        unsigned char c = s[i];
        switch (kind[c]) {
        case PLAIN: {
            /* most of a statement: the run is found first, then copied at once */
            int64_t j = i + 1;
            while (j < n && kind[s[j]] == PLAIN)
                j++;
            memcpy(out + o, s + i, (size_t)(j - i));
            o += j - i;
            i = j;
            break;
        }
        case PAIR:
            if (i + 1 < n && s[i + 1] == (c == '/' ? '*' : '-'))
                goto own_key;
            out[o++] = c;
            i++;
            break;
        case UNSAFE:
            goto own_key;
        case QUOTE: {
            out[o++] = '\'';
            int64_t j = i + 1;
            while (j < n && s[j] != '\'') {
                /* the text between two quotes goes, but an unsafe mark in it still counts */
                if (kind[s[j]] == UNSAFE ||
                    (kind[s[j]] == PAIR && j + 1 < n && s[j + 1] == (s[j] == '/' ? '*' : '-')))
                    goto own_key;
                j++;
            }
            if (j == n) {
                /* no pair: the quote stays, and the numbers after it are folded */
                i++;
                break;
            }
            out[o++] = '\'';
            i = j + 1;
            break;
        }
        case DIGIT:
            if (o == 0 || !keeps[out[o - 1]]) {
                out[o++] = '1';
                i++;
                while (i < n && (unsigned char)(s[i] - '0') < 10)
                    i++;
                break;
            }
            /* fall through: a run of digits that is not a number is copied whole, so that
               its later digits are not taken for the start of a number */
        case DIGIT0:
            while (i < n && (unsigned char)(s[i] - '0') < 10)
                out[o++] = s[i++];
            break;
        }
    }
    return o;
own_key:
    memcpy(out, s, (size_t)n);
    return n;
}

/* keys(data, offsets, count, out_data, out_offsets) -> length: the buffers of an Arrow
   large_string array (offsets: count + 1 little-endian int64, the first possibly non-zero)
   in, the keys written into out_data (at least as long as the statements' bytes) and
   out_offsets (count + 1 int64, from 0); returns the bytes written. The caller gives the
   output buffers from Arrow's memory pool, which reuses its pages: fresh memory for each
   vector of 2,048 statements cost as much as the keys themselves. */
static PyObject *keys(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer data, offsets, out_data, out_offsets;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "y*y*nw*w*", &data, &offsets, &count, &out_data, &out_offsets))
        return NULL;
    PyObject *result = NULL;
    const int64_t *off = (const int64_t *)offsets.buf;
    if (count < 0 || offsets.len < (Py_ssize_t)((count + 1) * sizeof(int64_t)) ||
        out_offsets.len < (Py_ssize_t)((count + 1) * sizeof(int64_t))) {
        PyErr_SetString(PyExc_ValueError, "offsets too short");
        goto done;
    }
    int64_t first = off[0], last = off[count];
    if (first < 0 || last < first || last > data.len || out_data.len < last - first) {
        PyErr_SetString(PyExc_ValueError, "offsets outside the data");
        goto done;
    }
    unsigned char *dst = (unsigned char *)out_data.buf;
    int64_t *dst_off = (int64_t *)out_offsets.buf;
    const unsigned char *src = (const unsigned char *)data.buf;
    int64_t o = 0;
    Py_BEGIN_ALLOW_THREADS
    dst_off[0] = 0;
    for (Py_ssize_t r = 0; r < count; r++) {
        int64_t a = off[r], b = off[r + 1];
        if (b > a)
            o += key_of(src + a, b - a, dst + o);
        dst_off[r + 1] = o;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromLongLong((long long)o);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&out_data);
    PyBuffer_Release(&out_offsets);
    return result;
}

static PyMethodDef methods[] = {
    {"keys", keys, METH_VARARGS, "The statement keys of an Arrow large_string array's buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "statement_key", "The statement key in one pass (see the C file).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_statement_key(void)
{
    init_tables();
    return PyModule_Create(&module);
}
