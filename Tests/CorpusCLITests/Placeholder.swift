import Testing

@Test func placeholderCorpusCLITests() { #expect(1 + 1 == 2) }
