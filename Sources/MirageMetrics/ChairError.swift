/// Everything that can go wrong while preparing or running CHAIR. Each message says what to do.
public enum ChairError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The synonym list could not be parsed (the message names the file when known).
    case invalidSynonyms(String)
    /// A file could not be read: path and the system's reason.
    case unreadableFile(String, String)
    /// A prebuilt ground-truth JSON is not `{"<image id>": ["node word", ...]}`: path and what is wrong.
    case invalidGroundTruth(String, String)
    /// A COCO annotation file is missing or malformed: path and what is wrong.
    case invalidAnnotations(String, String)
    /// An instance category name that is not in the vocabulary (the reference fails with a KeyError).
    case unknownCategory(String, file: String)
    /// A caption's image id has no ground truth. `captionIndex` is the 0-based position in the scored list.
    case unknownImage(imageId: Int, captionIndex: Int?)
    /// Nothing to score.
    case noCaptions
    /// A caption file is malformed: file, 1-based line when known, what is wrong.
    case invalidCaptions(file: String, line: Int?, reason: String)

    public var description: String {
        switch self {
        case .invalidSynonyms(let why):
            return "invalid CHAIR synonym list: \(why)"
        case .unreadableFile(let path, let why):
            return "cannot read \(path): \(why)"
        case .invalidGroundTruth(let path, let why):
            return "\(path) is not a CHAIR ground-truth file (expected {\"<image id>\": [\"node word\", ...]}): "
                + "\(why). Pass the prebuilt coco2014_gt_objects.json, or build one from COCO annotations "
                + "with --coco-annotations DIR."
        case .invalidAnnotations(let path, let why):
            return "\(path): \(why). CHAIR's ground truth needs the COCO 2014 files instances_train2014.json, "
                + "instances_val2014.json, captions_train2014.json and captions_val2014.json in one folder."
        case .unknownCategory(let name, let file):
            return "\(file): category \"\(name)\" is not a node word of the CHAIR synonym list; "
                + "use the COCO 2014 instance files with the 80 standard categories"
        case .unknownImage(let imageId, let index):
            let at = index.map { " (caption \($0 + 1))" } ?? ""
            return "image id \(imageId)\(at) has no CHAIR ground truth. CHAIR scores COCO 2014 train/val "
                + "images only: check that the id is a COCO id and that the right key holds it "
                + "(--image-id-key). The reference silently scores such a caption against no objects; "
                + "pass --allow-unknown-images to do the same."
        case .noCaptions:
            return "no captions to score: the input holds no caption records"
        case .invalidCaptions(let file, let line, let reason):
            let at = line.map { "\(file):\($0)" } ?? file
            return "\(at): \(reason)"
        }
    }
}
