import CorpusSupport
import Testing

@Suite("HTML.escape")
struct HTMLTests {
    @Test(arguments: [
        ("plain 文本", "plain 文本"),
        ("a & b", "a &amp; b"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        (#"say "hi""#, "say &quot;hi&quot;"),
        ("it's", "it&#39;s"),
        ("&amp;", "&amp;amp;"),
        ("", ""),
        ("x >\u{338} y", "x &gt;\u{338} y"),
    ])
    func escapes(_ input: String, _ expected: String) {
        #expect(HTML.escape(input) == expected)
    }

    @Test func safeInsideEitherQuote() {
        let escaped = HTML.escape(#"" onmouseover='x' <b>"#)
        #expect(!escaped.contains("\"") && !escaped.contains("'") && !escaped.contains("<") && !escaped.contains(">"))
    }
}
