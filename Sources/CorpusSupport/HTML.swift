/// Text for HTML pages.
public enum HTML {
    /// `text` made safe inside HTML elements and inside attribute values quoted with `"` or `'`:
    /// `&` `<` `>` `"` `'` become `&amp;` `&lt;` `&gt;` `&quot;` `&#39;`; everything else is kept.
    ///
    /// Works on Unicode scalars, so a `>` followed by a combining mark is escaped too.
    /// Complexity: O(n) in the length of `text`.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
