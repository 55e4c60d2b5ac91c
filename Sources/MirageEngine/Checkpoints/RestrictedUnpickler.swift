import Foundation

/// A value on the restricted pickle machine's stack. Containers live in the unpickler's arena and are
/// referred to by index, so a hostile stream can build neither reference cycles nor chains whose release
/// recurses: the arena is freed as flat arrays.
public enum PickleValue: Hashable, Sendable {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer outside Int64 (LONG1/LONG4 with more than 8 bytes or a long text); its digits are not kept.
    case bigInt
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list(Int)
    case tuple(Int)
    case dict(Int)
    /// An allowed global that REDUCE may call.
    case callable(PickleCallable)
    /// `torch.FloatStorage`-style storage classes and `torch.float32`-style dtypes.
    case dtype(TensorDType)
    /// `torch.storage.UntypedStorage`: a storage of bytes, typed by the `_rebuild_tensor_v3` that views it.
    case untypedStorage
    /// A storage named by a persistent id (index into `PickleResult.storages`).
    case storage(Int)
    /// A tensor built by a rebuild function (index into `PickleResult.tensors`).
    case tensor(Int)
}

/// The only callables the unpickler knows. REDUCE "calls" one by building the value it describes in Swift;
/// nothing from the file is ever executed.
public enum PickleCallable: String, Hashable, Sendable {
    case orderedDict = "collections.OrderedDict"
    case rebuildTensorV2 = "torch._utils._rebuild_tensor_v2"
    case rebuildTensorV3 = "torch._utils._rebuild_tensor_v3"
    case rebuildParameter = "torch._utils._rebuild_parameter"
    case rebuildParameterWithState = "torch._utils._rebuild_parameter_with_state"
}

/// A storage a persistent id names: `('storage', storage type or dtype, key, location, numel)`, the tuple
/// `torch.serialization`'s `persistent_id` writes (pytorch/pytorch, torch/serialization.py, `_save`).
public struct PickleStorage: Sendable, Equatable {
    public let key: String
    /// `.u8` for an untyped storage (torch 2.x writes one for the dtypes without a storage class, e.g. uint16
    /// and float8, and types it in `_rebuild_tensor_v3`).
    public let dtype: TensorDType
    /// Elements of `dtype` the storage holds (bytes, for an untyped storage).
    public let count: Int
    public let location: String
    public let untyped: Bool
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage, in elements.
public struct PickleTensor: Sendable, Equatable {
    public let storage: Int
    public let storageOffset: Int
    public let shape: [Int]
    public let strides: [Int]
    public let requiresGrad: Bool
}

/// What a stream unpickled to: the root value and the arena its containers live in.
public struct PickleResult: Sendable {
    public var root: PickleValue = .none
    public var lists: [[PickleValue]] = []
    public var tuples: [[PickleValue]] = []
    public var dicts: [PickleDict] = []
    public var storages: [PickleStorage] = []
    public var tensors: [PickleTensor] = []
}

/// An insertion-ordered dict; setting an existing key replaces its value in place (as Python's dict).
/// Only keys that are cheap to hash are looked up (numbers, None, strings up to 4 KB); other keys (bytes,
/// containers, longer strings) are appended, so a stream repeating SETITEM with one huge key costs no more
/// than its length.
public struct PickleDict: Sendable {
    public private(set) var keys: [PickleValue] = []
    public private(set) var values: [PickleValue] = []
    private var index: [PickleValue: Int] = [:]

    static func isIndexed(_ key: PickleValue) -> Bool {
        switch key {
        case let .string(s): return s.utf8.count <= 4096
        case .none, .bool, .int, .bigInt, .float, .dtype, .untypedStorage, .callable: return true
        case .bytes, .list, .tuple, .dict, .storage, .tensor: return false
        }
    }

    mutating func set(_ key: PickleValue, _ value: PickleValue) {
        guard Self.isIndexed(key) else {
            keys.append(key)
            values.append(value)
            return
        }
        if let i = index[key] {
            values[i] = value
        } else {
            index[key] = keys.count
            keys.append(key)
            values.append(value)
        }
    }

    public subscript(key: String) -> PickleValue? { index[.string(key)].map { values[$0] } }
}

/// A pickle interpreter for the streams `torch.save` writes (protocols 2–5), restricted to data: dicts and
/// `collections.OrderedDict` (a BUILD of its state, such as `_metadata`, is accepted and ignored), lists,
/// tuples, strings, bytes, numbers, booleans, None, storage persistent ids, and the tensor rebuild functions
/// of `torch._utils`. Any other global, a REDUCE of anything but those callables, an unknown opcode or a
/// truncated stream is an error naming the file, the byte offset and what was refused. It never imports or
/// calls anything (docs/checkpoints.md, "The unpickler's allow-list").
public struct RestrictedUnpickler {
    /// Names the stream in errors, e.g. `model.pth (archive/data.pkl)`.
    let path: String
    /// Storage key → bytes available for it (the size of the archive's `data/<key>` entry).
    let storageBytes: [String: Int]

    public init(path: String, storageBytes: [String: Int]) {
        self.path = path
        self.storageBytes = storageBytes
    }

    /// Allowed `module.name` globals, as GLOBAL / STACK_GLOBAL spell them (torch 2.x: storage classes for the
    /// persistent ids, dtypes for `_rebuild_tensor_v3`; pytorch/pytorch torch/_utils.py and torch/storage.py).
    static let allowedGlobals: [String: PickleValue] = {
        var table: [String: PickleValue] = [:]
        for c in [PickleCallable.orderedDict, .rebuildTensorV2, .rebuildTensorV3, .rebuildParameter, .rebuildParameterWithState] {
            table[c.rawValue] = .callable(c)
        }
        let storages: [(String, TensorDType)] = [
            ("FloatStorage", .f32), ("DoubleStorage", .f64), ("HalfStorage", .f16), ("BFloat16Storage", .bf16),
            ("LongStorage", .i64), ("IntStorage", .i32), ("ShortStorage", .i16), ("CharStorage", .i8),
            ("ByteStorage", .u8), ("BoolStorage", .bool),
        ]
        for (name, dtype) in storages { table["torch." + name] = .dtype(dtype) }
        let dtypes: [(String, TensorDType)] = [
            ("float32", .f32), ("float", .f32), ("float64", .f64), ("double", .f64), ("float16", .f16), ("half", .f16),
            ("bfloat16", .bf16), ("int64", .i64), ("long", .i64), ("int32", .i32), ("int", .i32), ("int16", .i16),
            ("short", .i16), ("int8", .i8), ("uint8", .u8), ("bool", .bool), ("uint16", .u16), ("uint32", .u32),
            ("uint64", .u64), ("float8_e4m3fn", .f8e4m3), ("float8_e5m2", .f8e5m2),
        ]
        for (name, dtype) in dtypes { table["torch." + name] = .dtype(dtype) }
        table["torch.storage.UntypedStorage"] = .untypedStorage
        table["torch.UntypedStorage"] = .untypedStorage
        return table
    }()

    /// Unpickles `bytes` up to its STOP opcode.
    public func unpickle(_ bytes: UnsafeRawBufferPointer) throws -> PickleResult {
        var machine = Machine(bytes: bytes, owner: self)
        return try machine.run()
    }

    func refusal(_ offset: Int, _ detail: String) -> ModelError {
        .unreadableCheckpoint(
            path: path, detail: "pickle byte \(offset): \(detail)",
            fix: "Mirage reads only tensors, dicts, lists and plain values from a checkpoint and never runs code from it. "
                + "If the file comes from a source you trust, load it in Python with torch.load(path, weights_only=True) "
                + "and save the state dict again with torch.save or safetensors.")
    }

    func truncated(_ offset: Int, _ what: String) -> ModelError {
        .unreadableCheckpoint(path: path, detail: "pickle stream ends at byte \(offset) inside \(what)",
                              fix: "The checkpoint is truncated or corrupt; download it again.")
    }
}

private struct Machine {
    let bytes: UnsafeRawBufferPointer
    let owner: RestrictedUnpickler
    var position = 0
    var stack: [PickleValue] = []
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]
    var result = PickleResult()
    /// Offset of the opcode being executed, for errors.
    var opcodeOffset = 0

    init(bytes: UnsafeRawBufferPointer, owner: RestrictedUnpickler) {
        self.bytes = bytes
        self.owner = owner
    }

    func refuse(_ detail: String) -> ModelError { owner.refusal(opcodeOffset, detail) }

    mutating func take(_ n: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - position else { throw owner.truncated(bytes.count, what) }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    mutating func byte(_ what: String) throws -> UInt8 { try take(1, what)[0] }

    mutating func littleEndian(_ n: Int, _ what: String) throws -> UInt64 {
        let b = try take(n, what)
        var v: UInt64 = 0
        for i in (0..<n).reversed() { v = v << 8 | UInt64(b[i]) }
        return v
    }

    mutating func line(_ what: String) throws -> String {
        var end = position
        while end < bytes.count && bytes[end] != 0x0A { end += 1 }
        guard end < bytes.count else { throw owner.truncated(bytes.count, what) }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<end]), as: UTF8.self)
        position = end + 1
        return text
    }

    mutating func length(_ n: Int, _ what: String) throws -> Int {
        let v = try littleEndian(n, what)
        guard v <= UInt64(bytes.count - position) else { throw owner.truncated(bytes.count, what) }
        return Int(v)
    }

    mutating func pop() throws -> PickleValue {
        if let mark = marks.last, stack.count <= mark { throw refuse("an opcode pops past a MARK") }
        guard let v = stack.popLast() else { throw refuse("an opcode pops from an empty stack") }
        return v
    }

    mutating func top() throws -> PickleValue {
        if let mark = marks.last, stack.count <= mark { throw refuse("an opcode reads past a MARK") }
        guard let v = stack.last else { throw refuse("an opcode reads from an empty stack") }
        return v
    }

    mutating func popMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw refuse("an opcode needs a MARK and there is none") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    mutating func string(_ raw: UnsafeRawBufferPointer) throws -> PickleValue {
        guard let s = String(validating: raw, as: UTF8.self) else { throw refuse("a string is not valid UTF-8") }
        return .string(s)
    }

    mutating func put(_ index: Int) throws {
        guard index >= 0 else { throw refuse("a negative memo index") }
        memo[index] = try top()
    }

    mutating func get(_ index: Int) throws {
        guard let v = memo[index] else { throw refuse("memo index \(index) was never stored") }
        stack.append(v)
    }

    mutating func tuple(_ items: [PickleValue]) -> PickleValue {
        result.tuples.append(items)
        return .tuple(result.tuples.count - 1)
    }

    mutating func global(module: String, name: String) throws -> PickleValue {
        let qualified = module + "." + name
        guard let value = RestrictedUnpickler.allowedGlobals[qualified] else {
            throw refuse("global \(qualified) is not on the allow-list (collections.OrderedDict, torch._utils rebuild "
                         + "functions, torch storage classes and dtypes); it was not imported")
        }
        return value
    }

    mutating func setItems(_ pairs: ArraySlice<PickleValue>, into target: PickleValue) throws {
        guard case let .dict(d) = target else { throw refuse("SETITEM(S) on \(describe(target)), which is not a dict") }
        guard pairs.count % 2 == 0 else { throw refuse("SETITEMS with an odd number of items") }
        var i = pairs.startIndex
        while i < pairs.endIndex {
            result.dicts[d].set(pairs[i], pairs[i + 1])
            i += 2
        }
    }

    mutating func append(_ items: [PickleValue], to target: PickleValue) throws {
        guard case let .list(l) = target else { throw refuse("APPEND(S) on \(describe(target)), which is not a list") }
        result.lists[l].append(contentsOf: items)
    }

    func describe(_ v: PickleValue) -> String {
        switch v {
        case .none: return "None"
        case .bool: return "a bool"
        case .int, .bigInt: return "an int"
        case .float: return "a float"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .list: return "a list"
        case .tuple: return "a tuple"
        case .dict: return "a dict"
        case let .callable(c): return c.rawValue
        case .dtype, .untypedStorage: return "a torch storage type or dtype"
        case .storage: return "a storage"
        case .tensor: return "a tensor"
        }
    }

    mutating func run() throws -> PickleResult {
        while true {
            opcodeOffset = position
            let op = try byte("an opcode")
            switch op {
            case 0x80: // PROTO
                let version = try byte("PROTO")
                guard version <= 5 else { throw refuse("pickle protocol \(version) (Mirage reads protocols 2 to 5)") }
            case 0x95: // FRAME: the frame length is advisory; opcodes are read the same either way.
                _ = try littleEndian(8, "FRAME")
            case 0x2E: // STOP
                guard marks.isEmpty else { throw refuse("STOP with an open MARK") }
                result.root = try pop()
                return result
            case 0x28: marks.append(stack.count) // MARK
            case 0x30: _ = try pop() // POP
            case 0x31: _ = try popMark() // POP_MARK
            case 0x32: stack.append(try top()) // DUP
            case 0x4E: stack.append(.none) // NONE
            case 0x88: stack.append(.bool(true)) // NEWTRUE
            case 0x89: stack.append(.bool(false)) // NEWFALSE
            case 0x4A: // BININT
                stack.append(.int(Int(Int32(bitPattern: UInt32(try littleEndian(4, "BININT"))))))
            case 0x4B: stack.append(.int(Int(try byte("BININT1")))) // BININT1
            case 0x4D: stack.append(.int(Int(try littleEndian(2, "BININT2")))) // BININT2
            case 0x8A, 0x8B: // LONG1, LONG4: two's-complement little-endian of the given length
                let n = op == 0x8A ? Int(try byte("LONG1")) : try length(4, "LONG4")
                let raw = try take(n, "a long integer")
                stack.append(Self.signedInteger(raw))
            case 0x49, 0x4C: // INT, LONG (text)
                var text = try line(op == 0x49 ? "INT" : "LONG")
                if op == 0x4C, text.hasSuffix("L") { text.removeLast() }
                if op == 0x49, text == "00" || text == "01" {
                    stack.append(.bool(text == "01"))
                } else if let n = Int(text) {
                    stack.append(.int(n))
                } else if !text.isEmpty, text.drop(while: { $0 == "-" || $0 == "+" }).allSatisfy(\.isNumber) {
                    stack.append(.bigInt)
                } else {
                    throw refuse("INT/LONG with text that is not a number")
                }
            case 0x47: // BINFLOAT (big-endian)
                let raw = try take(8, "BINFLOAT")
                var bits: UInt64 = 0
                for b in raw { bits = bits << 8 | UInt64(b) }
                stack.append(.float(Double(bitPattern: bits)))
            case 0x46: // FLOAT (text)
                guard let d = Double(try line("FLOAT")) else { throw refuse("FLOAT with text that is not a number") }
                stack.append(.float(d))
            case 0x58: stack.append(try string(take(try length(4, "BINUNICODE"), "BINUNICODE"))) // BINUNICODE
            case 0x8C: stack.append(try string(take(Int(try byte("SHORT_BINUNICODE")), "SHORT_BINUNICODE")))
            case 0x8D: stack.append(try string(take(try length(8, "BINUNICODE8"), "BINUNICODE8")))
            case 0x54: stack.append(try string(take(try length(4, "BINSTRING"), "BINSTRING"))) // BINSTRING
            case 0x55: stack.append(try string(take(Int(try byte("SHORT_BINSTRING")), "SHORT_BINSTRING")))
            case 0x42: stack.append(.bytes(Array(try take(try length(4, "BINBYTES"), "BINBYTES")))) // BINBYTES
            case 0x43: stack.append(.bytes(Array(try take(Int(try byte("SHORT_BINBYTES")), "SHORT_BINBYTES"))))
            case 0x8E: stack.append(.bytes(Array(try take(try length(8, "BINBYTES8"), "BINBYTES8"))))
            case 0x5D: // EMPTY_LIST
                result.lists.append([])
                stack.append(.list(result.lists.count - 1))
            case 0x7D: // EMPTY_DICT
                result.dicts.append(PickleDict())
                stack.append(.dict(result.dicts.count - 1))
            case 0x29: stack.append(tuple([])) // EMPTY_TUPLE
            case 0x74: stack.append(tuple(try popMark())) // TUPLE
            case 0x85: // TUPLE1
                let a = try pop()
                stack.append(tuple([a]))
            case 0x86: // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(tuple([a, b]))
            case 0x87: // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(tuple([a, b, c]))
            case 0x6C: // LIST
                result.lists.append(try popMark())
                stack.append(.list(result.lists.count - 1))
            case 0x64: // DICT
                let items = try popMark()
                result.dicts.append(PickleDict())
                let d = PickleValue.dict(result.dicts.count - 1)
                try setItems(items[...], into: d)
                stack.append(d)
            case 0x61: // APPEND
                let item = try pop()
                try append([item], to: try top())
            case 0x65: // APPENDS
                let items = try popMark()
                try append(items, to: try top())
            case 0x73: // SETITEM
                let value = try pop(), key = try pop()
                try setItems([key, value][...], into: try top())
            case 0x75: // SETITEMS
                let items = try popMark()
                try setItems(items[...], into: try top())
            case 0x70: try put(Int(try line("PUT")) ?? -1) // PUT
            case 0x71: try put(Int(try byte("BINPUT"))) // BINPUT
            case 0x72: try put(Int(try littleEndian(4, "LONG_BINPUT"))) // LONG_BINPUT
            case 0x94: try put(memo.count) // MEMOIZE
            case 0x67: try get(Int(try line("GET")) ?? -1) // GET
            case 0x68: try get(Int(try byte("BINGET"))) // BINGET
            case 0x6A: try get(Int(try littleEndian(4, "LONG_BINGET"))) // LONG_BINGET
            case 0x63: // GLOBAL "module\nname\n"
                let module = try line("GLOBAL"), name = try line("GLOBAL")
                stack.append(try global(module: module, name: name))
            case 0x93: // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case let .string(m) = module, case let .string(n) = name else {
                    throw refuse("STACK_GLOBAL whose module and name are not strings")
                }
                stack.append(try global(module: m, name: n))
            case 0x51: // BINPERSID
                stack.append(try persistentLoad(try pop()))
            case 0x52: // REDUCE
                let arguments = try pop(), callable = try pop()
                stack.append(try reduce(callable, arguments))
            case 0x62: // BUILD: only an OrderedDict's state (its `_metadata` attribute), which is ignored.
                let state = try pop()
                let target = try top()
                guard case .dict = target else {
                    throw refuse("BUILD (setting the state of \(describe(target)) from \(describe(state))) is only accepted on dicts")
                }
            default:
                throw refuse("opcode 0x\(String(op, radix: 16, uppercase: true)) (\(Self.opcodeName(op))) is not accepted")
            }
        }
    }

    static func signedInteger(_ raw: UnsafeRawBufferPointer) -> PickleValue {
        if raw.isEmpty { return .int(0) }
        let negative = raw[raw.count - 1] & 0x80 != 0
        // Wider than 8 bytes: fits only if the extra bytes are sign extension.
        if raw.count > 8 {
            let fill: UInt8 = negative ? 0xFF : 0
            guard raw[8...].allSatisfy({ $0 == fill }), (raw[7] & 0x80 != 0) == negative else { return .bigInt }
        }
        var v: UInt64 = negative ? ~0 : 0
        for i in (0..<min(raw.count, 8)).reversed() {
            v = (v << 8) | UInt64(raw[i])
        }
        // Fewer than 8 bytes: the seed's remaining high bytes are the sign extension.
        return .int(Int(Int64(bitPattern: v)))
    }

    static func opcodeName(_ op: UInt8) -> String {
        switch op {
        case 0x69: return "INST"
        case 0x6F: return "OBJ"
        case 0x81: return "NEWOBJ"
        case 0x92: return "NEWOBJ_EX"
        case 0x82, 0x83, 0x84: return "EXT"
        case 0x50: return "PERSID"
        case 0x53: return "STRING"
        case 0x56: return "UNICODE"
        case 0x8F: return "EMPTY_SET"
        case 0x90: return "ADDITEMS"
        case 0x91: return "FROZENSET"
        case 0x96: return "BYTEARRAY8"
        case 0x97: return "NEXT_BUFFER"
        case 0x98: return "READONLY_BUFFER"
        default: return "unknown"
        }
    }

    func int(_ v: PickleValue) -> Int? {
        if case let .int(n) = v { return n }
        return nil
    }

    func ints(_ v: PickleValue) -> [Int]? {
        guard case let .tuple(t) = v else { return nil }
        var out: [Int] = []
        for item in result.tuples[t] {
            guard let n = int(item) else { return nil }
            out.append(n)
        }
        return out
    }

    mutating func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case let .tuple(t) = pid, result.tuples[t].count == 5, case .string("storage") = result.tuples[t][0] else {
            throw refuse("a persistent id that is not ('storage', type, key, location, numel)")
        }
        let fields = result.tuples[t]
        let dtype: TensorDType, untyped: Bool
        switch fields[1] {
        case let .dtype(d): (dtype, untyped) = (d, false)
        case .untypedStorage: (dtype, untyped) = (.u8, true)
        default: throw refuse("a storage persistent id whose type is \(describe(fields[1])), not a torch storage type or dtype")
        }
        guard case let .string(key) = fields[2] else { throw refuse("a storage persistent id whose key is not a string") }
        let location: String
        if case let .string(l) = fields[3] { location = l } else { location = "" }
        guard let count = int(fields[4]), count >= 0 else { throw refuse("storage '\(key)' has a negative or non-integer size") }
        guard let available = owner.storageBytes[key] else {
            throw refuse("storage '\(key)' has no data/\(key) entry in the archive")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, bytes <= available else {
            throw refuse("storage '\(key)' declares \(count) elements of \(dtype.rawValue) but its data entry has \(available) bytes")
        }
        result.storages.append(PickleStorage(key: key, dtype: dtype, count: count, location: location, untyped: untyped))
        return .storage(result.storages.count - 1)
    }

    mutating func reduce(_ callable: PickleValue, _ arguments: PickleValue) throws -> PickleValue {
        guard case let .callable(c) = callable else {
            throw refuse("REDUCE of \(describe(callable)), which is not an allowed callable")
        }
        guard case let .tuple(t) = arguments else { throw refuse("REDUCE of \(c.rawValue) with arguments that are not a tuple") }
        let args = result.tuples[t]
        switch c {
        case .orderedDict:
            guard args.isEmpty else { throw refuse("collections.OrderedDict called with arguments (Mirage accepts OrderedDict())") }
            result.dicts.append(PickleDict())
            return .dict(result.dicts.count - 1)
        case .rebuildTensorV2, .rebuildTensorV3:
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, dtype (v3)][, metadata])
            let minimum = c == .rebuildTensorV2 ? 6 : 7
            guard args.count >= minimum, args.count <= minimum + 1 else {
                throw refuse("\(c.rawValue) called with \(args.count) arguments")
            }
            guard case var .storage(s) = args[0] else { throw refuse("\(c.rawValue) called on \(describe(args[0])), not a storage") }
            guard let offset = int(args[1]), let shape = ints(args[2]), let strides = ints(args[3]) else {
                throw refuse("\(c.rawValue) called with a storage offset, size or stride that is not made of integers")
            }
            let storage = result.storages[s]
            if c == .rebuildTensorV3 {
                guard case let .dtype(dtype) = args[6] else { throw refuse("\(c.rawValue) called without a dtype") }
                if storage.untyped {
                    // The bytes viewed as `dtype`: offsets, sizes and strides count elements of it.
                    result.storages.append(PickleStorage(key: storage.key, dtype: dtype, count: storage.count / dtype.byteSize,
                                                         location: storage.location, untyped: false))
                    s = result.storages.count - 1
                } else if dtype != storage.dtype {
                    throw refuse("\(c.rawValue) called with dtype \(dtype.rawValue) on a \(storage.dtype.rawValue) storage")
                }
            } else if storage.untyped {
                throw refuse("\(c.rawValue) called on an untyped storage (torch writes those with _rebuild_tensor_v3)")
            }
            let requiresGrad: Bool
            if case let .bool(b) = args[4] { requiresGrad = b } else { requiresGrad = false }
            return .tensor(try tensor(storage: s, offset: offset, shape: shape, strides: strides, requiresGrad: requiresGrad,
                                      function: c.rawValue))
        case .rebuildParameter, .rebuildParameterWithState:
            // (data, requires_grad, backward_hooks[, state])
            guard args.count == (c == .rebuildParameter ? 3 : 4), case .tensor = args[0] else {
                throw refuse("\(c.rawValue) called with arguments other than (tensor, requires_grad, hooks\(c == .rebuildParameter ? "" : ", state"))")
            }
            return args[0]
        }
    }

    /// Validates a view against its storage with checked arithmetic: every element it reaches lies inside.
    mutating func tensor(storage s: Int, offset: Int, shape: [Int], strides: [Int], requiresGrad: Bool,
                         function: String) throws -> Int {
        let storage = result.storages[s]
        guard shape.count == strides.count else {
            throw refuse("\(function): size \(shape) and stride \(strides) have different lengths")
        }
        guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            throw refuse("\(function): negative storage offset, size or stride (offset \(offset), size \(shape), stride \(strides))")
        }
        var elements = 1, overflow = false
        for d in shape {
            let (p, o) = elements.multipliedReportingOverflow(by: d)
            elements = p
            overflow = overflow || o
        }
        let (_, bytesOverflow) = elements.multipliedReportingOverflow(by: storage.dtype.byteSize)
        guard !overflow, !bytesOverflow else {
            throw refuse("\(function): size \(shape) of \(storage.dtype.rawValue) overflows a 64-bit byte count")
        }
        // A view may not hold more elements than its storage (an expanded, stride-0 view): materialized, a
        // few bytes of file could otherwise claim any amount of memory.
        guard elements <= storage.count else {
            throw refuse("\(function): a tensor of size \(shape) (\(elements) elements) views storage '\(storage.key)' of "
                         + "\(storage.count) elements, an expanded view; Mirage refuses these (save tensor.contiguous() instead)")
        }
        if elements > 0 {
            // Last element reached: offset + Σ (size − 1) · stride, which must be inside the storage.
            var last = offset
            for (d, st) in zip(shape, strides) {
                let (step, o1) = (d - 1).multipliedReportingOverflow(by: st)
                let (sum, o2) = last.addingReportingOverflow(step)
                guard !o1, !o2 else { throw refuse("\(function): size \(shape) with stride \(strides) overflows") }
                last = sum
            }
            guard last < storage.count else {
                throw refuse("\(function): a tensor of size \(shape), stride \(strides) at offset \(offset) reaches element "
                             + "\(last) of storage '\(storage.key)', which holds \(storage.count)")
            }
        }
        result.tensors.append(PickleTensor(storage: s, storageOffset: offset, shape: shape, strides: strides,
                                           requiresGrad: requiresGrad))
        return result.tensors.count - 1
    }
}
