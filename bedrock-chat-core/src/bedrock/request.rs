//! A [`ModelRequest`] in the SDK's terms: messages, system prompt, inference, guardrail and
//! tool configuration, built once per call and reused by every attempt.

use aws_sdk_bedrockruntime::error::BuildError;
use std::collections::HashMap;

use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, CitationsConfig, ContentBlock, ConversationRole,
    DocumentBlock, DocumentFormat as SdkDocumentFormat, DocumentSource, GuardrailConfiguration,
    GuardrailStreamConfiguration, GuardrailStreamProcessingMode, GuardrailTrace, ImageBlock,
    ImageFormat as SdkImageFormat, ImageSource, InferenceConfiguration, Message,
    ReasoningContentBlock, ReasoningTextBlock, SpecificToolChoice, SystemContentBlock, Tool,
    ToolChoice, ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock,
    ToolResultStatus, ToolSpecification, ToolUseBlock,
};
use aws_sdk_bedrockruntime::types::{
    JsonSchemaDefinition, OutputConfig, OutputFormat, OutputFormatStructure, OutputFormatType,
    PerformanceConfigLatency, PerformanceConfiguration, ServiceTier as SdkServiceTier,
    ServiceTierType as SdkServiceTierType,
};
use aws_smithy_types::{Blob, Document};

use super::document::to_document;
use crate::error::ModelError;
use crate::model::{
    GuardrailConfig, GuardrailStreamMode, InferenceConfig, ModelMessage, ModelRequest, OutputSchema,
};
use crate::parts::{Binary, DocumentFormat, ImageFormat, Part};
use crate::types::Role;

/// The parts of a Converse / ConverseStream call.
#[derive(Clone, Debug)]
pub(crate) struct ConverseParts {
    pub(crate) messages: Vec<Message>,
    pub(crate) system: Option<Vec<SystemContentBlock>>,
    pub(crate) inference: Option<InferenceConfiguration>,
    pub(crate) tool_config: Option<ToolConfiguration>,
    pub(crate) guardrail: Option<GuardrailConfig>,
    /// The structured output asked for, whose tool the reply must call.
    pub(crate) output_schema: Option<OutputSchema>,
    /// Model-specific fields (the inference config's, and Anthropic's `thinking`).
    pub(crate) additional_fields: Option<Document>,
    pub(crate) service_tier: Option<SdkServiceTier>,
    pub(crate) performance: Option<PerformanceConfiguration>,
    pub(crate) request_metadata: Option<HashMap<String, String>>,
    /// Native structured output: the answer is JSON text that fits the schema (instead of
    /// a call of the schema's forced tool).
    pub(crate) output_config: Option<OutputConfig>,
}

/// What the model takes, by its id and the config: cache points, Anthropic's `thinking`
/// fields, native structured output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ModelTraits {
    pub(crate) caching: bool,
    pub(crate) thinking: bool,
    pub(crate) native_output: bool,
    /// The model cites documents.
    pub(crate) citations: bool,
    /// The model reasons, and takes a conversation's earlier reasoning back.
    pub(crate) reasoning: bool,
}

/// Bedrock's smallest reasoning budget for Anthropic extended thinking.
pub(crate) const MIN_REASONING_BUDGET: u32 = 1024;

fn invalid(what: &str, error: BuildError) -> ModelError {
    ModelError::invalid_request(format!("could not build the {what}: {error}")).with_source(error)
}

impl ConverseParts {
    /// With `caching` (the model caches prompts) and a request that asks for it, a cache
    /// point follows the system prompt and the turn before the last: the stable prefix of a
    /// conversation, which the next turn finds in the cache. With `thinking` (an Anthropic
    /// Claude model) a reasoning budget becomes `additionalModelRequestFields.thinking`.
    ///
    /// # Errors
    /// [`ModelError::InvalidRequest`] when a part cannot be expressed (the SDK's builders
    /// refuse it), or a reasoning budget breaks Bedrock's rules; Bedrock itself validates
    /// the rest.
    pub(crate) fn new(request: ModelRequest, traits: ModelTraits) -> Result<Self, ModelError> {
        let ModelTraits {
            caching,
            thinking,
            native_output,
            citations,
            reasoning,
        } = traits;
        // Citations and structured output do not go together (Anthropic refuses both).
        let cite =
            citations && request.inference.wants_citations() && request.output_schema.is_none();
        let native_output = native_output && request.output_schema.is_some();
        let thinking = match thinking {
            true => thinking_fields(&request, native_output)?,
            false => None,
        };
        let output_config = match (&request.output_schema, native_output) {
            (Some(schema), true) => Some(output_config(schema)?),
            _ => None,
        };
        let additional_fields = additional_fields(&request.inference, thinking)?;
        let service_tier = request
            .inference
            .service_tier
            .map(|tier| {
                SdkServiceTier::builder()
                    .r#type(SdkServiceTierType::from(tier.as_str()))
                    .build()
                    .map_err(|e| invalid("service tier", e))
            })
            .transpose()?;
        let performance = request.inference.latency_optimized.map(|on| {
            PerformanceConfiguration::builder()
                .latency(match on {
                    true => PerformanceConfigLatency::Optimized,
                    false => PerformanceConfigLatency::Standard,
                })
                .build()
        });
        let request_metadata = (!request.request_metadata.is_empty()).then(|| {
            request
                .request_metadata
                .pairs()
                .into_iter()
                .map(|(key, value)| (key.to_owned(), metadata_text(&value)))
                .collect()
        });
        let cache = caching && request.prompt_caching;
        let tool_config = tool_config(&request, native_output)?;
        let tools_offered = tool_config.is_some();
        let mut turns = request.messages;
        unique_document_names(&mut turns);
        if !reasoning {
            drop_reasoning(&mut turns);
        }
        let mut messages = turns
            .into_iter()
            .map(|turn| message(turn, tools_offered, cite))
            .collect::<Result<Vec<_>, _>>()?;
        if cache && messages.len() >= 2 {
            let stable = messages.len() - 2;
            messages[stable]
                .content
                .push(ContentBlock::CachePoint(cache_point()?));
        }
        // Bedrock refuses a blank system block, and "no system prompt" is what a blank one
        // means here.
        let system = match request.system.filter(|s| !s.trim().is_empty()) {
            Some(text) if cache => Some(vec![
                SystemContentBlock::Text(text),
                SystemContentBlock::CachePoint(cache_point()?),
            ]),
            Some(text) => Some(vec![SystemContentBlock::Text(text)]),
            None => None,
        };
        Ok(Self {
            messages,
            system,
            inference: inference_config(&request.inference),
            tool_config,
            guardrail: request.guardrail,
            output_schema: request.output_schema,
            additional_fields,
            service_tier,
            performance,
            request_metadata,
            output_config,
        })
    }

    /// The guardrail for a Converse call.
    pub(crate) fn guardrail(&self) -> Option<GuardrailConfiguration> {
        self.guardrail.as_ref().map(|g| {
            GuardrailConfiguration::builder()
                .guardrail_identifier(&g.identifier)
                .guardrail_version(&g.version)
                .trace(trace(g.trace))
                .build()
        })
    }

    /// The guardrail for a ConverseStream call, with its processing mode.
    pub(crate) fn stream_guardrail(&self) -> Option<GuardrailStreamConfiguration> {
        self.guardrail.as_ref().map(|g| {
            let builder = GuardrailStreamConfiguration::builder()
                .guardrail_identifier(&g.identifier)
                .guardrail_version(&g.version)
                .trace(trace(g.trace));
            match g.stream_mode {
                Some(GuardrailStreamMode::Sync) => {
                    builder.stream_processing_mode(GuardrailStreamProcessingMode::Sync)
                }
                Some(GuardrailStreamMode::Async) => {
                    builder.stream_processing_mode(GuardrailStreamProcessingMode::Async)
                }
                None => builder,
            }
            .build()
        })
    }
}

/// Bedrock refuses a request with two documents of the same name (case aside), anywhere in
/// it: a file attached again in a later turn, or two files whose names clean up the same.
/// A repeated name gets the lowest free ` (2)`, ` (3)`, … after it; the first keeps its
/// name, so that names are stable as a conversation grows.
fn unique_document_names(turns: &mut [ModelMessage]) {
    let mut seen = std::collections::HashSet::new();
    for part in turns.iter_mut().flat_map(|turn| turn.parts.iter_mut()) {
        let Part::Document { name, .. } = part else {
            continue;
        };
        if seen.insert(name.to_lowercase()) {
            continue;
        }
        let unique = (2u32..)
            .map(|n| {
                let suffix = format!(" ({n})");
                // Within Bedrock's 200 characters.
                let stem: String = name.chars().take(200 - suffix.len()).collect();
                format!("{}{suffix}", stem.trim_end())
            })
            .find(|candidate| !seen.contains(&candidate.to_lowercase()))
            .expect("some number is free");
        seen.insert(unique.to_lowercase());
        *name = unique;
    }
}

/// Leaves the stored reasoning out of a conversation for a model that does not reason (one
/// continued on another model family): Bedrock refuses reasoning blocks there, and they
/// were for the model that wrote them. A reply that was nothing but reasoning (cut off
/// while thinking) is left with nothing to say, and Bedrock refuses an empty turn: it
/// goes, and the user's turns either side of it are joined, as the context window joins
/// them around a deleted reply.
fn drop_reasoning(turns: &mut Vec<ModelMessage>) {
    let is_reasoning =
        |p: &Part| matches!(p, Part::Reasoning { .. } | Part::RedactedReasoning { .. });
    if !turns.iter().any(|turn| turn.parts.iter().any(is_reasoning)) {
        return;
    }
    let mut kept: Vec<ModelMessage> = Vec::with_capacity(turns.len());
    for mut turn in turns.drain(..) {
        turn.parts.retain(|p| !is_reasoning(p));
        if !turn.is_blank() {
            ModelMessage::push_joined(&mut kept, turn);
        }
    }
    *turns = kept;
}

fn cache_point() -> Result<CachePointBlock, ModelError> {
    CachePointBlock::builder()
        .r#type(CachePointType::Default)
        .build()
        .map_err(|e| invalid("cache point", e))
}

/// A turn as a Bedrock message: one text block, or a block per part (tool calls and
/// results as text when no tool is offered; documents with citations on when `cite`).
fn message(turn: ModelMessage, tools_offered: bool, cite: bool) -> Result<Message, ModelError> {
    let content = if turn.parts.is_empty() {
        vec![ContentBlock::Text(turn.content)]
    } else {
        turn.parts
            .into_iter()
            .map(|part| match tools_offered {
                true => part,
                false => tool_part_as_text(part),
            })
            .map(|part| content_block(part, cite))
            .collect::<Result<Vec<_>, _>>()?
    };
    Message::builder()
        .role(match turn.role {
            Role::User => ConversationRole::User,
            Role::Assistant => ConversationRole::Assistant,
        })
        .set_content(Some(content))
        .build()
        .map_err(|e| invalid("message", e))
}

/// The bytes of an attachment, which must have been read back from the blob store.
fn blob(binary: Binary, what: &str) -> Result<Blob, ModelError> {
    match binary {
        Binary::Bytes(bytes) => Ok(Blob::new(bytes.to_vec())),
        Binary::Blob(blob) => Err(ModelError::invalid_request(format!(
            "the {what} in blob {} was not read back before the call",
            blob.key
        ))),
    }
}

fn content_block(part: Part, cite: bool) -> Result<ContentBlock, ModelError> {
    Ok(match part {
        // Citations are for people; the model gets the answer's words.
        Part::Text { text, .. } => ContentBlock::Text(text),
        Part::Image { format, source } => ContentBlock::Image(
            ImageBlock::builder()
                .format(image_format(format))
                .source(ImageSource::Bytes(blob(source, "image")?))
                .build()
                .map_err(|e| invalid("image block", e))?,
        ),
        Part::Document {
            format,
            name,
            source,
        } => ContentBlock::Document(
            DocumentBlock::builder()
                .format(document_format(format))
                .name(name)
                .source(DocumentSource::Bytes(blob(source, "document")?))
                .set_citations(
                    cite.then(|| CitationsConfig::builder().enabled(true).build())
                        .transpose()
                        .map_err(|e| invalid("citations config", e))?,
                )
                .build()
                .map_err(|e| invalid("document block", e))?,
        ),
        Part::ToolUse { id, name, input } => ContentBlock::ToolUse(
            ToolUseBlock::builder()
                .tool_use_id(id)
                .name(name)
                .input(to_document(&input))
                .build()
                .map_err(|e| invalid("tool use block", e))?,
        ),
        Part::ToolResult {
            tool_use_id,
            output,
            is_error,
        } => ContentBlock::ToolResult(
            ToolResultBlock::builder()
                .tool_use_id(tool_use_id)
                .content(match output {
                    serde_json::Value::String(text) => ToolResultContentBlock::Text(text),
                    other => ToolResultContentBlock::Json(to_document(&other)),
                })
                .status(if is_error {
                    ToolResultStatus::Error
                } else {
                    ToolResultStatus::Success
                })
                .build()
                .map_err(|e| invalid("tool result block", e))?,
        ),
        Part::Reasoning { text, signature } => {
            ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(
                ReasoningTextBlock::builder()
                    .text(text)
                    .set_signature(signature)
                    .build()
                    .map_err(|e| invalid("reasoning block", e))?,
            ))
        }
        Part::RedactedReasoning { data } => ContentBlock::ReasoningContent(
            ReasoningContentBlock::RedactedContent(blob(data, "redacted reasoning")?),
        ),
    })
}

fn image_format(format: ImageFormat) -> SdkImageFormat {
    match format {
        ImageFormat::Png => SdkImageFormat::Png,
        ImageFormat::Jpeg => SdkImageFormat::Jpeg,
        ImageFormat::Gif => SdkImageFormat::Gif,
        ImageFormat::Webp => SdkImageFormat::Webp,
    }
}

fn document_format(format: DocumentFormat) -> SdkDocumentFormat {
    match format {
        DocumentFormat::Pdf => SdkDocumentFormat::Pdf,
        DocumentFormat::Csv => SdkDocumentFormat::Csv,
        DocumentFormat::Doc => SdkDocumentFormat::Doc,
        DocumentFormat::Docx => SdkDocumentFormat::Docx,
        DocumentFormat::Xls => SdkDocumentFormat::Xls,
        DocumentFormat::Xlsx => SdkDocumentFormat::Xlsx,
        DocumentFormat::Html => SdkDocumentFormat::Html,
        DocumentFormat::Txt => SdkDocumentFormat::Txt,
        DocumentFormat::Md => SdkDocumentFormat::Md,
    }
}

fn trace(on: bool) -> GuardrailTrace {
    if on {
        GuardrailTrace::Enabled
    } else {
        GuardrailTrace::Disabled
    }
}

/// A request metadata key or value as Bedrock takes it: at most 256 characters of letters,
/// digits, white space and `:_@$#=/+,-.`, anything else replaced by `_`.
fn metadata_text(text: &str) -> String {
    text.chars()
        .take(256)
        .map(
            |c| match c.is_ascii_alphanumeric() || c == ' ' || ":_@$#=/+,-.".contains(c) {
                true => c,
                false => '_',
            },
        )
        .collect()
}

/// The inference config's model-specific fields with the `thinking` fields over them;
/// `None` when there are neither.
///
/// # Errors
/// [`ModelError::InvalidRequest`] when the config's fields are not a JSON object.
fn additional_fields(
    inference: &InferenceConfig,
    thinking: Option<serde_json::Value>,
) -> Result<Option<Document>, ModelError> {
    let mut fields = match &inference.additional_fields {
        None => serde_json::Map::new(),
        Some(serde_json::Value::Object(fields)) => fields.clone(),
        Some(other) => {
            return Err(ModelError::invalid_request(format!(
                "inference.additional_fields must be a JSON object, not {other}"
            )))
        }
    };
    if let Some(serde_json::Value::Object(thinking)) = thinking {
        fields.extend(thinking);
    }
    Ok((!fields.is_empty()).then(|| to_document(&serde_json::Value::Object(fields))))
}

/// Anthropic's extended thinking for a request with a reasoning budget:
/// `{"thinking": {"type": "enabled", "budget_tokens": N}}`, after Bedrock's rules, which
/// are checked here so that a bad budget is refused before any call.
fn thinking_fields(
    request: &ModelRequest,
    native_output: bool,
) -> Result<Option<serde_json::Value>, ModelError> {
    let inference = &request.inference;
    let Some(budget) = inference.reasoning_budget else {
        return Ok(None);
    };
    let refuse = |message: String| Err(ModelError::invalid_request(message));
    if budget < MIN_REASONING_BUDGET {
        return refuse(format!(
            "inference.reasoning_budget is {budget}; extended thinking needs at least \
             {MIN_REASONING_BUDGET} tokens"
        ));
    }
    if let Some(max_tokens) = inference.max_tokens.filter(|&max| max <= budget) {
        return refuse(format!(
            "inference.max_tokens ({max_tokens}) must be greater than \
             inference.reasoning_budget ({budget}): the answer needs tokens after the reasoning"
        ));
    }
    if inference.temperature.is_some() {
        return refuse(
            "inference.temperature cannot be set with inference.reasoning_budget: the model \
             refuses sampling settings with extended thinking"
                .into(),
        );
    }
    if inference.top_p.is_some() {
        return refuse(
            "inference.top_p cannot be set with inference.reasoning_budget: the model refuses \
             sampling settings with extended thinking"
                .into(),
        );
    }
    if let Some(schema) = request.output_schema.as_ref().filter(|_| !native_output) {
        return refuse(format!(
            "inference.reasoning_budget cannot be used with structured output ({}): the model \
             refuses thinking when a tool is forced",
            schema.name
        ));
    }
    Ok(Some(serde_json::json!({
        "thinking": {"type": "enabled", "budget_tokens": budget}
    })))
}

/// `None` when nothing is set, so that the model's defaults apply and no empty object is
/// sent. The reasoning budget goes elsewhere ([`thinking_fields`]).
fn inference_config(inference: &InferenceConfig) -> Option<InferenceConfiguration> {
    let unset = inference.max_tokens.is_none()
        && inference.temperature.is_none()
        && inference.top_p.is_none()
        && inference.stop_sequences.is_empty();
    if unset {
        return None;
    }
    let stop_sequences =
        (!inference.stop_sequences.is_empty()).then(|| inference.stop_sequences.clone());
    Some(
        InferenceConfiguration::builder()
            .set_max_tokens(
                inference
                    .max_tokens
                    .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            )
            .set_temperature(inference.temperature)
            .set_top_p(inference.top_p)
            .set_stop_sequences(stop_sequences)
            .build(),
    )
}

/// The request's tools, and the structured output's tool forced when there is one; `None`
/// when there is neither.
fn tool_config(
    request: &ModelRequest,
    native_output: bool,
) -> Result<Option<ToolConfiguration>, ModelError> {
    let spec = |name: &str, description: &str, schema: &serde_json::Value| {
        ToolSpecification::builder()
            .name(name)
            .description(description)
            .input_schema(ToolInputSchema::Json(to_document(schema)))
            .build()
            .map(Tool::ToolSpec)
            .map_err(|e| invalid("tool specification", e))
    };
    let mut tools = request
        .tools
        .iter()
        .map(|tool| spec(&tool.name, &tool.description, &tool.input_schema))
        .collect::<Result<Vec<_>, _>>()?;
    let mut choice = None;
    if let Some(schema) = request.output_schema.as_ref().filter(|_| !native_output) {
        tools.push(spec(&schema.name, &schema.description, &schema.schema)?);
        let forced = SpecificToolChoice::builder()
            .name(&schema.name)
            .build()
            .map_err(|e| invalid("tool choice", e))?;
        choice = Some(ToolChoice::Tool(forced));
    }
    if tools.is_empty() {
        return Ok(None);
    }
    ToolConfiguration::builder()
        .set_tools(Some(tools))
        .set_tool_choice(choice)
        .build()
        .map(Some)
        .map_err(|e| invalid("tool configuration", e))
}

/// Native structured output: JSON text that fits `schema`.
fn output_config(schema: &OutputSchema) -> Result<OutputConfig, ModelError> {
    let definition = JsonSchemaDefinition::builder()
        .schema(schema.schema.to_string())
        .name(&schema.name)
        .description(&schema.description)
        .build()
        .map_err(|e| invalid("output schema", e))?;
    let format = OutputFormat::builder()
        .r#type(OutputFormatType::JsonSchema)
        .structure(OutputFormatStructure::JsonSchema(definition))
        .build()
        .map_err(|e| invalid("output format", e))?;
    Ok(OutputConfig::builder().text_format(format).build())
}

/// A tool call or result as text, for a conversation that holds them while no tool is
/// offered (Bedrock refuses tool blocks without a tool configuration).
fn tool_part_as_text(part: Part) -> Part {
    match part {
        Part::ToolUse { name, input, .. } => {
            Part::text(format!("[called the tool {name} with {input}]"))
        }
        Part::ToolResult {
            output, is_error, ..
        } => {
            let output = match output {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            let verb = if is_error { "failed" } else { "returned" };
            Part::text(format!("[the tool {verb}: {output}]"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelMessage;
    use serde_json::json;

    #[test]
    fn repeated_document_names_are_numbered_across_the_request() {
        let doc = |name: &str| Part::document(DocumentFormat::Txt, name, b"x".to_vec());
        let mut turns = vec![
            ModelMessage::user("").with_parts(vec![doc("notes"), doc("notes (2)"), doc("x")]),
            ModelMessage::assistant("ok"),
            ModelMessage::user("").with_parts(vec![doc("Notes"), doc("NOTES"), doc("y")]),
            ModelMessage::user("").with_parts(vec![doc(&"z".repeat(200)), doc(&"Z".repeat(200))]),
        ];
        unique_document_names(&mut turns);
        let names: Vec<&str> = turns
            .iter()
            .flat_map(|t| &t.parts)
            .filter_map(|p| match p {
                Part::Document { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let long = format!("{} (2)", "Z".repeat(196));
        assert_eq!(
            names,
            [
                "notes",
                "notes (2)",
                "x",
                "Notes (3)",
                "NOTES (4)",
                "y",
                &"z".repeat(200),
                &long
            ]
        );
    }

    fn traits(caching: bool, thinking: bool) -> ModelTraits {
        ModelTraits {
            caching,
            thinking,
            native_output: false,
            citations: false,
            reasoning: true,
        }
    }

    #[test]
    fn an_empty_inference_config_is_left_out() {
        assert!(inference_config(&InferenceConfig::default()).is_none());
        let set = inference_config(&InferenceConfig {
            max_tokens: Some(u32::MAX),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(set.max_tokens, Some(i32::MAX));
    }

    #[test]
    fn parts_become_their_content_blocks() {
        let parts = ConverseParts::new(
            ModelRequest::new([ModelMessage::user("").with_parts(vec![
                Part::image(ImageFormat::Webp, b"RIFF".to_vec()),
                Part::document(DocumentFormat::Md, "notes", b"# n".to_vec()),
                Part::text("what is this?"),
            ])]),
            traits(false, false),
        )
        .unwrap();
        let blocks = &parts.messages[0].content;
        assert_eq!(blocks.len(), 3);
        match &blocks[0] {
            ContentBlock::Image(image) => {
                assert_eq!(image.format, SdkImageFormat::Webp);
                assert_eq!(
                    image.source,
                    Some(ImageSource::Bytes(Blob::new(b"RIFF".to_vec())))
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        match &blocks[1] {
            ContentBlock::Document(doc) => assert_eq!(doc.name, "notes"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(blocks[2], ContentBlock::Text("what is this?".into()));
    }

    #[test]
    fn an_unread_blob_is_refused_before_the_call() {
        let blob = Part::Image {
            format: ImageFormat::Png,
            source: Binary::Blob(crate::parts::BlobRef {
                key: "k".into(),
                size: 1,
                sha256: String::new(),
            }),
        };
        let error = ConverseParts::new(
            ModelRequest::new([ModelMessage::user("").with_parts(vec![blob, Part::text("hi")])]),
            traits(true, false),
        )
        .unwrap_err();
        assert!(
            matches!(error, ModelError::InvalidRequest { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn cache_points_follow_the_system_prompt_and_the_turn_before_the_last() {
        let request = ModelRequest::new([
            ModelMessage::user("q1"),
            ModelMessage::assistant("a1"),
            ModelMessage::user("q2"),
        ])
        .with_system("Be brief.")
        .with_prompt_caching(true);
        let cached = ConverseParts::new(request.clone(), traits(true, false)).unwrap();
        let system = cached.system.unwrap();
        assert!(matches!(
            system.as_slice(),
            [
                SystemContentBlock::Text(_),
                SystemContentBlock::CachePoint(_)
            ]
        ));
        assert!(matches!(
            cached.messages[1].content.as_slice(),
            [ContentBlock::Text(_), ContentBlock::CachePoint(_)]
        ));
        assert_eq!(cached.messages[2].content.len(), 1);
        assert_eq!(cached.messages[0].content.len(), 1);
        // A model that does not cache, or a request that does not ask: no cache point.
        for parts in [
            ConverseParts::new(request.clone(), traits(false, false)).unwrap(),
            ConverseParts::new(request.with_prompt_caching(false), traits(true, false)).unwrap(),
        ] {
            assert_eq!(parts.system.unwrap().len(), 1);
            assert!(parts.messages.iter().all(|m| m.content.len() == 1));
        }
    }

    fn with_inference(inference: InferenceConfig) -> ModelRequest {
        ModelRequest::new([ModelMessage::user("hi")]).with_inference(inference)
    }

    #[test]
    fn a_reasoning_budget_becomes_anthropic_thinking() {
        let inference = InferenceConfig::new()
            .with_max_tokens(4096)
            .with_reasoning_budget(2048);
        let parts =
            ConverseParts::new(with_inference(inference.clone()), traits(false, true)).unwrap();
        assert_eq!(
            parts.additional_fields,
            Some(to_document(
                &json!({"thinking": {"type": "enabled", "budget_tokens": 2048}})
            ))
        );
        assert_eq!(parts.inference.unwrap().max_tokens, Some(4096));
        // A model that does not take thinking gets no field, whatever the budget.
        let other = ConverseParts::new(
            with_inference(inference.with_temperature(0.5)),
            traits(false, false),
        )
        .unwrap();
        assert!(other.additional_fields.is_none());
        // A budget alone sets no inferenceConfig, and no budget sends no field.
        let alone = InferenceConfig::new().with_reasoning_budget(1024);
        assert!(inference_config(&alone).is_none());
        let none = ConverseParts::new(with_inference(InferenceConfig::new()), traits(false, true));
        assert!(none.unwrap().additional_fields.is_none());
    }

    #[test]
    fn a_reasoning_budget_that_breaks_bedrocks_rules_is_refused_naming_the_field() {
        let budget = |n| InferenceConfig::new().with_reasoning_budget(n);
        let schema = OutputSchema {
            name: "persona".into(),
            description: "A persona".into(),
            schema: json!({"type": "object"}),
        };
        let cases = [
            (
                with_inference(budget(1023)),
                "inference.reasoning_budget is 1023",
            ),
            (
                with_inference(budget(2048).with_max_tokens(2048)),
                "inference.max_tokens (2048)",
            ),
            (
                with_inference(budget(1024).with_temperature(1.0)),
                "inference.temperature",
            ),
            (
                with_inference(budget(1024).with_top_p(0.5)),
                "inference.top_p",
            ),
            (
                with_inference(budget(1024)).with_output_schema(schema),
                "structured output (persona)",
            ),
        ];
        for (request, expected) in cases {
            match ConverseParts::new(request.clone(), traits(false, true)) {
                Err(ModelError::InvalidRequest { message, .. }) => {
                    assert!(message.contains(expected), "{expected}: {message}")
                }
                other => panic!("{request:?}: unexpected {other:?}"),
            }
        }
        let fine = budget(1024).with_max_tokens(1025);
        assert!(ConverseParts::new(with_inference(fine), traits(false, true)).is_ok());
    }

    #[test]
    fn reasoning_parts_go_back_with_their_signature() {
        let parts = ConverseParts::new(
            ModelRequest::new([
                ModelMessage::user("q"),
                ModelMessage::assistant("").with_parts(vec![
                    Part::Reasoning {
                        text: "hmm".into(),
                        signature: Some("sig".into()),
                    },
                    Part::RedactedReasoning {
                        data: Binary::Bytes(b"x".to_vec().into()),
                    },
                    Part::text("a"),
                ]),
                ModelMessage::user("q2"),
            ]),
            traits(false, false),
        )
        .unwrap();
        match parts.messages[1].content.as_slice() {
            [ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(text)), ContentBlock::ReasoningContent(ReasoningContentBlock::RedactedContent(data)), ContentBlock::Text(a)] =>
            {
                assert_eq!(
                    (text.text.as_str(), text.signature.as_deref()),
                    ("hmm", Some("sig"))
                );
                assert_eq!(data.as_ref(), b"x");
                assert_eq!(a, "a");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_output_schema_forces_its_tool() {
        let parts = ConverseParts::new(
            ModelRequest {
                messages: vec![ModelMessage::user("hi")],
                system: Some("  ".into()),
                output_schema: Some(OutputSchema {
                    name: "persona".into(),
                    description: "A persona".into(),
                    schema: json!({"type": "object"}),
                }),
                ..Default::default()
            },
            traits(true, false),
        )
        .unwrap();
        assert!(parts.system.is_none());
        let config = parts.tool_config.unwrap();
        assert_eq!(config.tools.len(), 1);
        match config.tool_choice {
            Some(ToolChoice::Tool(choice)) => assert_eq!(choice.name, "persona"),
            other => panic!("unexpected tool choice {other:?}"),
        }
    }
}
