// Thin, longjmp-safe wrappers around libjpeg-turbo and libpng: the codecs report errors by calling
// back, and their default handlers exit the process; these wrappers jump back instead and return a code.
#include "CMirageImage.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

void mirage_image_free(void *pixels) { free(pixels); }

// MARK: JPEG

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    int truncated;
} mirage_jpeg_error;

static void mirage_jpeg_error_exit(j_common_ptr cinfo) {
    mirage_jpeg_error *err = (mirage_jpeg_error *)cinfo->err;
    longjmp(err->jump, 1);
}

// Warnings ("corrupt JPEG data: extraneous bytes", ...) are ignored, as Pillow's decoder ignores them;
// running out of data is an error, as Pillow raises "image file is truncated".
static void mirage_jpeg_emit_message(j_common_ptr cinfo, int level) {
    mirage_jpeg_error *err = (mirage_jpeg_error *)cinfo->err;
    if (level < 0 && err->base.msg_code == JWRN_JPEG_EOF) {
        err->truncated = 1;
        longjmp(err->jump, 1);
    }
}

int mirage_jpeg_decode(const unsigned char *data, size_t size, uint64_t max_pixels, mirage_decoded_image *out) {
    memset(out, 0, sizeof(*out));
    out->pngColorType = -1;
    struct jpeg_decompress_struct cinfo;
    mirage_jpeg_error err;
    unsigned char *volatile pixels = NULL;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = mirage_jpeg_error_exit;
    err.base.emit_message = mirage_jpeg_emit_message;
    err.truncated = 0;
    if (setjmp(err.jump)) {
        if (err.truncated) {
            snprintf(out->message, sizeof(out->message), "the JPEG data ends before the image does");
        } else {
            (*err.base.format_message)((j_common_ptr)&cinfo, out->message);
        }
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return err.truncated ? 2 : 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if (max_pixels > 0 && (uint64_t)cinfo.image_width * (uint64_t)cinfo.image_height > max_pixels) {
        out->width = (int32_t)cinfo.image_width;
        out->height = (int32_t)cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        return 3;
    }
    out->adobeMarker = cinfo.saw_Adobe_marker ? 1 : 0;
    switch (cinfo.num_components) {
    case 1: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case 3: cinfo.out_color_space = JCS_RGB; break;
    case 4: cinfo.out_color_space = JCS_CMYK; break;
    default:
        snprintf(out->message, sizeof(out->message), "JPEG with %d components is not supported",
                 cinfo.num_components);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    pixels = malloc(stride * cinfo.output_height);
    if (!pixels) {
        snprintf(out->message, sizeof(out->message), "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    out->width = (int32_t)cinfo.output_width;
    out->height = (int32_t)cinfo.output_height;
    out->channels = cinfo.output_components;
    out->bitDepth = 8;
    out->pixels = pixels;
    // All rows are decoded; like Pillow, a missing EOI marker after them is not an error.
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

int mirage_jpeg_encode(const unsigned char *pixels, int32_t width, int32_t height, int32_t channels,
                       int32_t quality, unsigned char **out, size_t *outSize, char *message) {
    *out = NULL;
    *outSize = 0;
    message[0] = 0;
    if (channels != 1 && channels != 3) {
        snprintf(message, 200, "JPEG encoding takes 1 (grey) or 3 (RGB) channels, not %d", channels);
        return 1;
    }
    if (width <= 0 || height <= 0 || width > 65500 || height > 65500) {
        snprintf(message, 200, "JPEG images must be 1 to 65500 pixels wide and high (got %dx%d)", width, height);
        return 1;
    }
    struct jpeg_compress_struct cinfo;
    mirage_jpeg_error err;
    unsigned char *volatile buffer = NULL;
    unsigned long size = 0;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = mirage_jpeg_error_exit;
    err.truncated = 0;
    if (setjmp(err.jump)) {
        (*err.base.format_message)((j_common_ptr)&cinfo, message);
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    // jpeg_mem_dest allocates (and grows) the buffer with malloc; the caller frees it.
    jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, &size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    // Full-resolution chroma (4:4:4, as Pillow's `subsampling=0`): flat coloured shapes keep clean edges.
    for (int c = 0; c < cinfo.num_components; c++) {
        cinfo.comp_info[c].h_samp_factor = 1;
        cinfo.comp_info[c].v_samp_factor = 1;
    }
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + stride * cinfo.next_scanline);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buffer;
    *outSize = (size_t)size;
    return 0;
}

// MARK: PNG

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
    int truncated;
    char *message;
} mirage_png_reader;

static void mirage_png_read(png_structp png, png_bytep dest, png_size_t length) {
    mirage_png_reader *reader = (mirage_png_reader *)png_get_io_ptr(png);
    if (reader->size - reader->offset < length) {
        reader->truncated = 1;
        png_error(png, "the PNG data ends before the image does");
    }
    memcpy(dest, reader->data + reader->offset, length);
    reader->offset += length;
}

static void mirage_png_error(png_structp png, png_const_charp message) {
    mirage_png_reader *reader = (mirage_png_reader *)png_get_error_ptr(png);
    snprintf(reader->message, 200, "%s", message);
    png_longjmp(png, 1);
}

static void mirage_png_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

int mirage_png_decode(const unsigned char *data, size_t size, uint64_t max_pixels, mirage_decoded_image *out) {
    memset(out, 0, sizeof(*out));
    mirage_png_reader reader = {data, size, 0, 0, out->message};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, mirage_png_error,
                                             mirage_png_warning);
    if (!png) { snprintf(out->message, 200, "out of memory"); return 1; }
    png_infop info = png_create_info_struct(png);
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); snprintf(out->message, 200, "out of memory"); return 1; }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        return reader.truncated ? 2 : 1;
    }
    png_set_read_fn(png, &reader, mirage_png_read);
    // Pillow does not check the CRC of ancillary chunks strictly either; critical chunks must be intact.
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_WARN_DISCARD);
    png_set_user_limits(png, 1u << 16, 1u << 16);
    png_read_info(png, info);
    png_uint_32 width, height;
    int bitDepth, colorType, interlace;
    png_get_IHDR(png, info, &width, &height, &bitDepth, &colorType, &interlace, NULL, NULL);
    if (max_pixels > 0 && (uint64_t)width * (uint64_t)height > max_pixels) {
        out->width = (int32_t)width;
        out->height = (int32_t)height;
        png_destroy_read_struct(&png, &info, NULL);
        return 3;
    }
    out->pngColorType = colorType;
    if (png_get_valid(png, info, PNG_INFO_tRNS)) {
        png_bytep alphas = NULL; int count = 0; png_color_16p colour = NULL;
        png_get_tRNS(png, info, &alphas, &count, &colour);
        out->hasTransparency = 1;
        if (colour) {
            out->transparentGrey = colour->gray;
            out->transparentRGB[0] = colour->red;
            out->transparentRGB[1] = colour->green;
            out->transparentRGB[2] = colour->blue;
        }
    }
    if (colorType == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (colorType == PNG_COLOR_TYPE_GRAY && bitDepth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    int depth = png_get_bit_depth(png, info);
    size_t stride = png_get_rowbytes(png, info);
    pixels = malloc(stride * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!pixels || !rows) { snprintf(out->message, 200, "out of memory"); png_longjmp(png, 1); }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + stride * y;
    png_read_image(png, rows);
    free(rows);
    rows = NULL;
    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->channels = channels;
    out->bitDepth = depth;
    out->pixels = pixels;
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}
