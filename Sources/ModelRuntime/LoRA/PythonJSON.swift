import Foundation

/// JSON text exactly as Python's `json.dumps(value, indent=2, sort_keys=True)` writes it, which
/// is how PEFT writes adapter_config.json and transformers writes config.json: keys sorted, two
/// spaces of indent, `", "` and `": "` separators, `{}` and `[]` when empty, non-ASCII escaped as
/// `\uXXXX`, floats as their shortest repr (`0.0`, `1e-05`) and integers without a point.
///
/// Values: dictionaries with String keys, arrays, String, Bool, Int, Double, Float, NSNumber
/// (as JSONSerialization returns them: booleans, integers and doubles stay distinct) and NSNull.
enum PythonJSON {
    /// - Parameter newline: end with a line break (transformers' files do, PEFT's adapter_config.json does not).
    /// - Throws: `ModelError.unsupported` for a non-finite number or a value of another type.
    static func encode(_ value: Any, newline: Bool = true) throws -> Data {
        var out = ""
        try write(value, indent: 0, into: &out)
        if newline { out += "\n" }
        return Data(out.utf8)
    }

    private static func write(_ value: Any, indent: Int, into out: inout String) throws {
        let pad = String(repeating: " ", count: indent + 2), closing = String(repeating: " ", count: indent)
        switch value {
        case is NSNull:
            out += "null"
        case let s as String:
            out += quoted(s)
        case let dictionary as [String: Any]:
            if dictionary.isEmpty { out += "{}"; return }
            out += "{\n"
            let keys = dictionary.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
            for (i, key) in keys.enumerated() {
                out += pad + quoted(key) + ": "
                try write(dictionary[key] ?? NSNull(), indent: indent + 2, into: &out)
                out += i == keys.count - 1 ? "\n" : ",\n"
            }
            out += closing + "}"
        case let array as [Any]:
            if array.isEmpty { out += "[]"; return }
            out += "[\n"
            for (i, element) in array.enumerated() {
                out += pad
                try write(element, indent: indent + 2, into: &out)
                out += i == array.count - 1 ? "\n" : ",\n"
            }
            out += closing + "]"
        default:
            out += try number(value)
        }
    }

    /// Booleans, integers and floats, told apart by their Swift type or, for NSNumber, by the
    /// Objective-C type code that JSONSerialization gives them ("c" for booleans, "d"/"f" for floats).
    private static func number(_ value: Any) throws -> String {
        if type(of: value) == Bool.self, let b = value as? Bool { return b ? "true" : "false" }
        if let i = value as? Int, type(of: value) == Int.self { return String(i) }
        if type(of: value) == Double.self, let d = value as? Double { return try float(d) }
        if type(of: value) == Float.self, let f = value as? Float { return try float(Double("\(f)") ?? Double(f)) }
        if let n = value as? NSNumber {
            switch String(cString: n.objCType) {
            case "c", "B": return n.boolValue ? "true" : "false"
            case "d", "f": return try float(n.doubleValue)
            default: return n.stringValue
            }
        }
        throw ModelError.unsupported("cannot write \(value) (\(type(of: value))) as JSON")
    }

    /// Python's float repr: the shortest text that reads back the same, with ".0" on integers.
    private static func float(_ d: Double) throws -> String {
        guard d.isFinite else { throw ModelError.unsupported("cannot write the non-finite number \(d) as JSON") }
        return "\(d)"
    }

    private static func quoted(_ s: String) -> String {
        var out = "\""
        for unit in s.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            default:
                let hex = String(unit, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        return out + "\""
    }
}
