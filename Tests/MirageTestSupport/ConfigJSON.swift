import Foundation

/// Hand edits of a model folder's config.json, as a user would make them (the hostile-input tests).
public enum ConfigJSON {
    /// Reads `dir/config.json` as a JSON object, applies `edit` and writes it back.
    public static func edit(in dir: URL, _ edit: (inout [String: Any]) -> Void) throws {
        let url = dir.appendingPathComponent("config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }
}
