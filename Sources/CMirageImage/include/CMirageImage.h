#ifndef CMIRAGE_IMAGE_H
#define CMIRAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/// The samples of one decoded image, exactly as the codec produced them (no colour conversion beyond
/// what the codec itself does). `pixels` is malloc'd; release it with `mirage_image_free`.
typedef struct {
    int32_t width;
    int32_t height;
    /// JPEG: 1 (grey), 3 (RGB, from YCbCr or RGB) or 4 (CMYK as stored; Adobe files store it inverted).
    /// PNG: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (palettes are expanded to RGB).
    int32_t channels;
    /// 8 or 16 (PNG only: 16-bit samples are big-endian, as in the file).
    int32_t bitDepth;
    /// PNG colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA); -1 for JPEG.
    int32_t pngColorType;
    /// PNG tRNS chunk: 1 when present. For grey/RGB it names one transparent colour (in file bit depth).
    int32_t hasTransparency;
    uint16_t transparentGrey;
    uint16_t transparentRGB[3];
    /// JPEG: 1 when the file has an Adobe APP14 marker.
    int32_t adobeMarker;
    unsigned char *pixels;
    /// Set on failure: the codec's own message.
    char message[200];
} mirage_decoded_image;

/// Decodes a JPEG with libjpeg's defaults (ISLOW IDCT, fancy upsampling, no block smoothing changes),
/// which are the settings Pillow uses for `Image.open(...)`. Returns 0 on success; 1 on a corrupt or
/// unsupported file; 2 when the data ends before the image does; 3 when the header declares more than
/// `max_pixels` pixels (0: no limit), with `width` and `height` set and nothing allocated. Never exits
/// the process.
int mirage_jpeg_decode(const unsigned char *data, size_t size, uint64_t max_pixels, mirage_decoded_image *out);

/// Decodes a PNG with libpng (palette expanded to RGB, grey below 8 bits scaled to 8 bits, 16-bit kept).
/// Returns 0 on success, 1 on a corrupt file, 2 when the data ends early, 3 when the header declares
/// more than `max_pixels` pixels (0: no limit; `width` and `height` set, nothing allocated). Never
/// exits the process.
int mirage_png_decode(const unsigned char *data, size_t size, uint64_t max_pixels, mirage_decoded_image *out);

/// Encodes 8-bit samples (`channels` 1 = grey or 3 = RGB, rows packed) as a baseline JPEG with
/// libjpeg-turbo's compressor at `quality` (1–100), with 4:4:4 chroma (no subsampling) and libjpeg's
/// defaults otherwise (YCbCr for RGB, ISLOW DCT, standard Huffman tables). On success returns 0 and sets `*out` (malloc'd; release
/// with `mirage_image_free`) and `*outSize`; on failure returns 1 with the codec's message in `message`
/// (200 bytes). Never exits the process.
int mirage_jpeg_encode(const unsigned char *pixels, int32_t width, int32_t height, int32_t channels,
                       int32_t quality, unsigned char **out, size_t *outSize, char *message);

void mirage_image_free(void *pixels);

#endif
