import Foundation
import ModelRuntime

/// An Ollama Modelfile for a base model and a GGUF LoRA (`corpus adapters export --modelfile`):
/// FROM the base, ADAPTER the LoRA, the chat template in Ollama's Go template language (written
/// for each template `ChatTemplate` knows, rendering what it renders: the default system
/// message of a ChatML model as SYSTEM), and the stop strings. Ollama is not installable on the
/// machine this was written on, so the file follows Ollama's documented syntax
/// (docs/modelfile.md) but was not run; docs/ADAPTERS.md says so.
enum OllamaModelfile {
    static func text(base: String, adapter: String, template: ChatTemplate, header: String) -> String {
        var lines = ["# \(header)", "FROM \(base)", "ADAPTER \(adapter)"]
        let (go, stops, system) = parts(template)
        lines.append("TEMPLATE \"\"\"\(go)\"\"\"")
        if let system { lines.append("SYSTEM \"\"\"\(system)\"\"\"") }
        for stop in stops { lines.append("PARAMETER stop \"\(stop)\"") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// (Go template, stop strings, default system message).
    static func parts(_ template: ChatTemplate) -> (String, [String], String?) {
        switch template {
        case let .chatml(defaultSystem):
            let go = """
                {{- if .System }}<|im_start|>system
                {{ .System }}<|im_end|>
                {{ end }}
                {{- range .Messages }}{{ if ne .Role "system" }}<|im_start|>{{ .Role }}
                {{ .Content }}<|im_end|>
                {{ end }}{{ end }}<|im_start|>assistant

                """
            return (go, ["<|im_end|>", "<|im_start|>"], defaultSystem)
        case .llama3:
            let go = """
                {{- if .System }}<|start_header_id|>system<|end_header_id|>

                {{ .System }}<|eot_id|>{{ end }}
                {{- range .Messages }}{{ if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>

                {{ .Content }}<|eot_id|>{{ end }}{{ end }}<|start_header_id|>assistant<|end_header_id|>


                """
            return (go, ["<|eot_id|>", "<|start_header_id|>"], nil)
        case let .mistral(_, eos):
            let go = """
                {{- range $i, $m := .Messages }}{{ if eq .Role "user" }}[INST] {{ if and $.System (eq $i 0) }}{{ $.System }}

                {{ end }}{{ .Content }} [/INST]{{ else if eq .Role "assistant" }}{{ .Content }}\(eos){{ end }}{{ end }}
                """
            return (go, ["[INST]", eos].filter { !$0.isEmpty }, nil)
        case .alpaca:
            let go = """
                {{ if .System }}{{ .System }}{{ else }}\(ChatTemplate.alpacaPreamble){{ end }}

                {{ range .Messages }}{{ if eq .Role "user" }}### Instruction:
                {{ .Content }}

                ### Response:
                {{ else if eq .Role "assistant" }}{{ .Content }}

                {{ end }}{{ end }}
                """
            return (go, ["### Instruction:"], nil)
        }
    }
}
