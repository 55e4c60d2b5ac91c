import Foundation

extension ImagePreprocessorConfig {
    /// The class defaults of `BlipImageProcessor` (transformers 5.24, models/blip/image_processing_pil_blip.py),
    /// which BLIP-2 and InstructBLIP checkpoints name in their processor config: convert to RGB, resize straight to
    /// `size` (384 × 384 by default; 224 × 224 in the BLIP-2 / InstructBLIP checkpoints) with Pillow's bicubic filter,
    /// no centre crop, rescale by 1/255, normalize with OpenAI CLIP's mean and std. The Pillow-exact resampler,
    /// rescale and normalize steps are the CLIP / SigLIP processors' (ImagePreprocessor, ImageResample).
    public static let blip = ImagePreprocessorConfig(
        processorType: "BlipImageProcessor", doResize: true, size: .fixed(height: 384, width: 384),
        resample: .bicubic, doCenterCrop: false, cropHeight: 384, cropWidth: 384, doRescale: true,
        rescaleFactor: 1.0 / 255, doNormalize: true, imageMean: openAIClipMean, imageStd: openAIClipStd)
}
