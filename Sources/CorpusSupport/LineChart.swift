import Foundation

/// A chart of named series over training steps (loss, eval loss, learning rate, rewards, KL …),
/// drawn as inline SVG for self-contained HTML pages: no scripts, fonts or images from the
/// network.
///
/// Each series is a line in its own colour (with a dot and a tooltip on every point when it has
/// at most `markerLimit` points, so sparse series such as the eval loss show where they were
/// measured); the legend gives each series' last value. The axes get round tick values. Values
/// that are not finite (a diverged loss) are left out of the drawing and counted under the chart.
/// A series of more than `drawLimit` points is drawn from the lowest and highest value of each of
/// `drawLimit / 2` runs of consecutive points, which keeps its spikes. A noisy series named in
/// `smoothed` (a training loss) is drawn faint when it has more than `markerLimit` points, with
/// its running mean over it (`runningMean`).
public struct LineChart: Sendable {
    /// One point: a step and the value measured at it.
    public typealias Point = (step: Int, value: Double)
    /// A named series of points, in step order.
    public typealias Series = (name: String, points: [Point])

    /// The chart's heading.
    public var title: String
    /// The series drawn, in legend and colour order.
    public var series: [Series]
    /// The value axis starts at 0 (for quantities such as a learning rate whose distance from 0
    /// matters) instead of fitting the values.
    public var startsAtZero: Bool
    /// Names of series to draw with their running mean when they have more than `markerLimit`
    /// points.
    public var smoothed: Set<String>

    /// A chart of `series` under `title`; see `startsAtZero` and `smoothed`.
    public init(title: String, series: [Series], startsAtZero: Bool = false, smoothed: Set<String> = []) {
        self.title = title
        self.series = series
        self.startsAtZero = startsAtZero
        self.smoothed = smoothed
    }

    /// Series of at most this many points get a dot with a tooltip on every point.
    public static let markerLimit = 60
    /// Series of more points are thinned for drawing to about this many.
    public static let drawLimit = 1_000
    /// Colours of the series, in order (then again from the start).
    public static let palette = ["#2a5bd7", "#e8772e", "#3a9d6a", "#c62828", "#7b4fc2", "#8c6d31", "#d6569b", "#5b6476"]

    /// CSS for the classes `html(_:)` uses: put it in the page's `<style>`.
    public static let css = """
        .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(420px,100%),1fr));gap:16px}
        .chart{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:10px 12px 6px;min-width:0}
        .chart h3{font-size:15px;margin:2px 0 4px}
        .legend{font-size:12.5px;color:#454d5c;display:flex;flex-wrap:wrap;gap:4px 14px;margin-bottom:2px}
        .legend i{display:inline-block;width:14px;height:3px;border-radius:2px;vertical-align:middle;margin-right:5px}
        .chart .note{font-size:12px;color:#5b6476;margin:2px 0 4px}
        .chart svg text{font-size:11px;fill:#5b6476}
        .chart svg .grid{stroke:#eef0f4}.chart svg .axis{stroke:#cfd5df}
        """

    /// Charts as one HTML fragment: a `<div class="charts">` with, for each chart, its title,
    /// legend and SVG.
    public static func html(_ charts: [LineChart]) -> String {
        "<div class=\"charts\">\n" + charts.map { $0.html() }.joined(separator: "\n") + "\n</div>\n"
    }

    /// This chart as a `<div class="chart">`: title, legend, SVG, and a note when values were left out.
    public func html() -> String {
        var h = "<div class=\"chart\"><h3>\(HTML.escape(title))</h3><div class=\"legend\">"
        for (index, s) in series.enumerated() {
            let last = s.points.last { $0.value.isFinite }
            let figure = last.map { " \(Self.format($0.value)) at step \($0.step)" } ?? " (no values)"
            h += "<span><i style=\"background:\(color(index))\"></i>\(HTML.escape(s.name))\(figure)</span>"
        }
        h += "</div>"
        h += svg()
        let means = series.filter { isSmoothed($0) }.map { "\(HTML.escape($0.name)) over about \(Self.meanSpan($0.points.count)) steps" }
        if !means.isEmpty {
            h += "<p class=\"note\">Faint: every step; bold: the running mean (\(means.joined(separator: ", "))).</p>"
        }
        let leftOut = series.reduce(0) { $0 + $1.points.filter { !$0.value.isFinite }.count }
        if leftOut > 0 {
            h += "<p class=\"note\">\(leftOut) value\(leftOut == 1 ? " is" : "s are") not a finite number (NaN or infinite) and not drawn.</p>"
        }
        return h + "</div>"
    }

    // Geometry of the SVG, in its own units (it scales to the page's width).
    private static let width = 520.0, height = 250.0
    private static let left = 58.0, right = 14.0, top = 10.0, bottom = 36.0

    /// The chart's SVG: grid and tick labels, then one line (and dots) per series.
    public func svg() -> String {
        let finite = series.map { $0.points.filter { $0.value.isFinite } }
        let all = finite.flatMap { $0 }
        var s = "<svg viewBox=\"0 0 \(Int(Self.width)) \(Int(Self.height))\" width=\"100%\" role=\"img\" aria-label=\"\(HTML.escape(title))\">"
        guard let firstPoint = all.first else {
            return s + "<text x=\"\(Int(Self.width / 2))\" y=\"\(Int(Self.height / 2))\" text-anchor=\"middle\">no values recorded</text></svg>"
        }
        // Step axis.
        var stepLow = all.reduce(firstPoint.step) { min($0, $1.step) }, stepHigh = all.reduce(firstPoint.step) { max($0, $1.step) }
        if stepLow == stepHigh { stepLow -= 1; stepHigh += 1 }
        // Value axis.
        var low = all.reduce(firstPoint.value) { min($0, $1.value) }, high = all.reduce(firstPoint.value) { max($0, $1.value) }
        if startsAtZero { low = min(low, 0); high = max(high, 0) }
        if low == high {
            let pad = low == 0 ? 1 : abs(low) * 0.1
            low -= pad
            high += pad
        } else if !startsAtZero || low < 0 {
            let pad = (high - low) * 0.05
            low -= pad
            high += pad
        } else {
            high += (high - low) * 0.05
        }
        let plotW = Self.width - Self.left - Self.right, plotH = Self.height - Self.top - Self.bottom
        func x(_ step: Int) -> Double { Self.left + Double(step - stepLow) / Double(stepHigh - stepLow) * plotW }
        func y(_ value: Double) -> Double { Self.top + (high - value) / (high - low) * plotH }

        let valueTicks = Self.ticks(low, high)
        let labels = Self.tickLabels(valueTicks.values, spacing: valueTicks.spacing)
        for (tick, label) in zip(valueTicks.values, labels) {
            let ty = Self.coordinate(y(tick))
            s += "<line class=\"grid\" x1=\"\(Int(Self.left))\" x2=\"\(Int(Self.width - Self.right))\" y1=\"\(ty)\" y2=\"\(ty)\"/>"
            s += "<text x=\"\(Int(Self.left - 6))\" y=\"\(Self.coordinate(y(tick) + 4))\" text-anchor=\"end\">\(label)</text>"
        }
        let stepTicks = Self.ticks(Double(stepLow), Double(stepHigh), integers: true).values
        let baseline = Self.coordinate(Self.top + plotH)
        for tick in stepTicks {
            let tx = Self.coordinate(x(Int(tick)))
            s += "<line class=\"axis\" x1=\"\(tx)\" x2=\"\(tx)\" y1=\"\(baseline)\" y2=\"\(Self.coordinate(Self.top + plotH + 4))\"/>"
            s += "<text x=\"\(tx)\" y=\"\(Self.coordinate(Self.top + plotH + 16))\" text-anchor=\"middle\">\(Int(tick))</text>"
        }
        s += "<line class=\"axis\" x1=\"\(Int(Self.left))\" x2=\"\(Int(Self.width - Self.right))\" y1=\"\(baseline)\" y2=\"\(baseline)\"/>"
        s += "<text x=\"\(Self.coordinate(Self.left + plotW / 2))\" y=\"\(Int(Self.height - 4))\" text-anchor=\"middle\">step</text>"

        for (index, points) in finite.enumerated() where !points.isEmpty {
            let name = HTML.escape(series[index].name), colour = color(index)
            func polyline(_ points: [Point], _ label: String, _ style: String) -> String {
                let coordinates = Self.thinned(points).map { "\(Self.coordinate(x($0.step))),\(Self.coordinate(y($0.value)))" }.joined(separator: " ")
                return "<polyline data-series=\"\(label)\" fill=\"none\" stroke=\"\(colour)\" \(style) stroke-linejoin=\"round\" points=\"\(coordinates)\"/>"
            }
            if isSmoothed(series[index]) {
                s += polyline(points, name, "stroke-width=\"1.1\" stroke-opacity=\"0.35\"")
                s += polyline(Self.runningMean(points, span: Self.meanSpan(series[index].points.count)), name + " (running mean)", "stroke-width=\"2.2\"")
            } else {
                s += polyline(points, name, "stroke-width=\"1.8\"")
            }
            if points.count <= Self.markerLimit {
                for p in points {
                    s += "<circle cx=\"\(Self.coordinate(x(p.step)))\" cy=\"\(Self.coordinate(y(p.value)))\" r=\"3\" fill=\"\(colour)\">"
                    s += "<title>\(name) · step \(p.step): \(Self.format(p.value))</title></circle>"
                }
            }
        }
        return s + "</svg>"
    }

    private func isSmoothed(_ s: Series) -> Bool {
        smoothed.contains(s.name) && s.points.count > Self.markerLimit
    }

    /// The running mean's span for a series of `count` points: about a fiftieth of it.
    static func meanSpan(_ count: Int) -> Int {
        max(2, count / 50)
    }

    /// An exponential running mean over about `span` points, as TensorBoard's smoothing computes it:
    /// weight w = 1 − 1/span, m_k = w·m_(k−1) + (1 − w)·v_k, divided by 1 − w^k so that the first
    /// points are not pulled towards 0.
    static func runningMean(_ points: [Point], span: Int) -> [Point] {
        let weight = 1 - 1 / Double(max(1, span))
        var mean = 0.0, debias = 0.0
        return points.map { p in
            mean = mean * weight + (1 - weight) * p.value
            debias = debias * weight + (1 - weight)
            return (p.step, mean / debias)
        }
    }

    private func color(_ index: Int) -> String {
        Self.palette[index % Self.palette.count]
    }

    /// A value as the legend and tooltips show it: four significant digits (`2.346`, `0.0002`,
    /// `1.5e-05`).
    public static func format(_ value: Double) -> String {
        String(format: "%.4g", value)
    }

    /// One decimal, without "-0.0".
    static func coordinate(_ value: Double) -> String {
        let text = String(format: "%.1f", value)
        return text == "-0.0" ? "0.0" : text
    }

    /// Round values between `low` and `high`, about five of them, and their spacing: multiples
    /// of 1, 2 or 5 × 10^k (of a whole number at least 1 with `integers`).
    static func ticks(_ low: Double, _ high: Double, integers: Bool = false) -> (values: [Double], spacing: Double) {
        guard high > low, low.isFinite, high.isFinite else { return ([low], 1) }
        let rough = (high - low) / 5
        let magnitude = pow(10, log10(rough).rounded(.down))
        // The spacing whose number of ticks is nearest to five.
        func distance(_ spacing: Double) -> Double { abs((high - low) / spacing - 5) }
        var spacing = [1.0, 2, 5, 10].map { $0 * magnitude }.min { distance($0) < distance($1) } ?? magnitude
        if integers { spacing = max(1, spacing.rounded()) }
        var values: [Double] = []
        var k = (low / spacing).rounded(.up)
        while k * spacing <= high + spacing * 1e-9, values.count < 50 {
            values.append(k == 0 ? 0 : k * spacing)
            k += 1
        }
        return (values, spacing)
    }

    /// Labels for ticks `spacing` apart, all in one style: plain decimals with as many places as
    /// the spacing needs (`0.25` → `0.50`…), or, when the largest is below 0.001 or from 10^6
    /// up, powers of ten with as many digits (`1.5e-4`).
    static func tickLabels(_ ticks: [Double], spacing: Double) -> [String] {
        let spacingExponent = Int(log10(spacing).rounded(.down))
        let largest = ticks.map(abs).max() ?? 0
        if largest != 0 && (largest < 1e-3 || largest >= 1e6) {
            let digits = max(0, Int(log10(largest).rounded(.down)) - spacingExponent)
            return ticks.map { value in
                guard value != 0 else { return "0" }
                let text = String(format: "%.\(digits)e", value)
                // "1.5e-04" → "1.5e-4".
                guard let e = text.firstIndex(of: "e"), let power = Int(text[text.index(after: e)...]) else { return text }
                return "\(text[..<e])e\(power)"
            }
        }
        let places = max(0, -spacingExponent)
        return ticks.map { String(format: "%.\(places)f", $0) }
    }

    /// At most about `drawLimit` points: the lowest and highest of each run of consecutive points,
    /// in step order.
    static func thinned(_ points: [Point]) -> [Point] {
        guard points.count > drawLimit else { return points }
        let runs = drawLimit / 2
        let size = (points.count + runs - 1) / runs
        var out: [Point] = []
        for start in stride(from: 0, to: points.count, by: size) {
            let run = points[start..<min(points.count, start + size)]
            guard let lowest = run.min(by: { $0.value < $1.value }), let highest = run.max(by: { $0.value < $1.value }) else { continue }
            if lowest.step == highest.step {
                out.append(lowest)
            } else {
                out += lowest.step < highest.step ? [lowest, highest] : [highest, lowest]
            }
        }
        return out
    }
}
