import Foundation

/// Everything that can go wrong while opening a model folder or running a model.
/// Each case names the file or tensor involved and says what to do about it.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String, hint: String)
    case cannotOpen(path: String, reason: String)
    case truncatedFile(path: String, size: Int, needed: Int)
    case badHeader(path: String, detail: String)
    case unsupportedDType(tensor: String, dtype: String, path: String)
    case offsetsOutOfRange(tensor: String, begin: Int, end: Int, dataSize: Int, path: String)
    case byteCountMismatch(tensor: String, shape: [Int], dtype: String, bytes: Int, path: String)
    case missingTensor(tensor: String, folder: String)
    case wrongShape(tensor: String, expected: [Int], actual: [Int])
    case badIndex(path: String, detail: String)
    case badConfig(path: String, field: String, detail: String)
    case unreadableConfig(path: String, detail: String)
    case unsupportedArchitecture(String)
    case unsupportedRopeType(String)
    case invalidInput(String)
    /// A forward pass produced a NaN or infinite logit (`value` is its description: nan, inf or -inf).
    case nonFiniteLogits(pass: Int, sequence: Int, position: Int, token: Int, value: String)
    case writeFailed(path: String, reason: String)
    /// A PyTorch checkpoint (or its ZIP container) that Mirage refuses or cannot read: what is wrong, then the fix.
    case unreadableCheckpoint(path: String, detail: String, fix: String)

    public var description: String {
        switch self {
        case let .fileNotFound(path, hint):
            return "\(path) not found. \(hint)"
        case let .cannotOpen(path, reason):
            return "cannot open \(path): \(reason). Check the path and its permissions."
        case let .truncatedFile(path, size, needed):
            return "\(path) is truncated: it has \(size) bytes but its header needs \(needed). "
                + "Download the file again (an interrupted download leaves it short)."
        case let .badHeader(path, detail):
            return "\(path) is not a valid safetensors file: \(detail). Re-download or re-export it."
        case let .unsupportedDType(tensor, dtype, path):
            return "tensor '\(tensor)' in \(path) has dtype \(dtype); Mirage loads F32, F16 and BF16 weights. "
                + "Convert the checkpoint (e.g. save it with torch_dtype=float16)."
        case let .offsetsOutOfRange(tensor, begin, end, dataSize, path):
            return "tensor '\(tensor)' in \(path) has data_offsets [\(begin), \(end)] outside the data section "
                + "of \(dataSize) bytes: the file is truncated or corrupt; download it again."
        case let .byteCountMismatch(tensor, shape, dtype, bytes, path):
            return "tensor '\(tensor)' in \(path) declares shape \(shape) of \(dtype) but spans \(bytes) bytes: "
                + "the header is inconsistent; re-export the file."
        case let .missingTensor(tensor, folder):
            return "tensor '\(tensor)' is missing from the model in \(folder). The checkpoint does not match its "
                + "config.json (wrong architecture or an incomplete download)."
        case let .wrongShape(tensor, expected, actual):
            return "tensor '\(tensor)' has shape \(actual) but config.json implies \(expected). "
                + "The weights and config.json belong to different models."
        case let .badIndex(path, detail):
            return "\(path) is not a valid sharded-checkpoint index: \(detail)."
        case let .badConfig(path, field, detail):
            return "\(path): field '\(field)' \(detail). Fix config.json (it should be the one written with the weights)."
        case let .unreadableConfig(path, detail):
            return "\(path) cannot be read as a model config: \(detail). Restore it from the model's download "
                + "(it must be the JSON object written with the weights)."
        case let .unsupportedArchitecture(name):
            return "architecture '\(name)' is not supported; Mirage runs LlamaForCausalLM and Qwen2ForCausalLM."
        case let .unsupportedRopeType(name):
            return "rope scaling type '\(name)' is not supported; Mirage implements default, linear, llama3 and dynamic."
        case let .invalidInput(detail):
            return detail
        case let .nonFiniteLogits(pass, sequence, position, token, value):
            return "non-finite logits: forward pass \(pass) (pass 1 is the prompt) gave \(value) for token \(token) at "
                + "position \(position) of sequence \(sequence). The model's weights or the input embeddings hold NaN or "
                + "infinite values (a corrupt or badly converted checkpoint) or a value overflowed in its precision: "
                + "re-download or re-export the checkpoint (in float32 if it overflows in float16)."
        case let .writeFailed(path, reason):
            return "cannot write \(path): \(reason). Check free disk space and permissions."
        case let .unreadableCheckpoint(path, detail, fix):
            return "\(path): \(detail). \(fix)"
        }
    }
}
