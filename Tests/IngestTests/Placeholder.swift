import Testing

@Test func placeholderIngestTests() { #expect(1 + 1 == 2) }
