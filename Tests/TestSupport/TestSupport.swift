import Foundation
public enum TestSupport {}
