import Foundation

/// JSON values as compact text, for the store's JSON columns and one-line output.
enum JSONText {
    /// One JSON value as compact text with sorted keys (`true`, `576`, `"llama"`, `{"a":1}`);
    /// empty when the value is not representable as JSON.
    static func compact(_ value: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
