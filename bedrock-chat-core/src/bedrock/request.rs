//! A [`ModelRequest`] in the SDK's terms: messages, system prompt, inference, guardrail and
//! tool configuration, built once per call and reused by every attempt.

use aws_sdk_bedrockruntime::error::BuildError;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, GuardrailConfiguration, GuardrailStreamConfiguration,
    GuardrailStreamProcessingMode, GuardrailTrace, InferenceConfiguration, Message,
    SpecificToolChoice, SystemContentBlock, Tool, ToolChoice, ToolConfiguration, ToolInputSchema,
    ToolSpecification,
};

use super::document::to_document;
use crate::error::ModelError;
use crate::model::{
    GuardrailConfig, GuardrailStreamMode, InferenceConfig, ModelRequest, OutputSchema,
};
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
}

fn invalid(what: &str, error: BuildError) -> ModelError {
    ModelError::invalid_request(format!("could not build the {what}: {error}")).with_source(error)
}

impl ConverseParts {
    /// # Errors
    /// [`ModelError::InvalidRequest`] when a part cannot be expressed (the SDK's builders
    /// refuse it); Bedrock itself validates the rest.
    pub(crate) fn new(request: ModelRequest) -> Result<Self, ModelError> {
        let messages = request
            .messages
            .into_iter()
            .map(|m| {
                Message::builder()
                    .role(match m.role {
                        Role::User => ConversationRole::User,
                        Role::Assistant => ConversationRole::Assistant,
                    })
                    .content(ContentBlock::Text(m.content))
                    .build()
                    .map_err(|e| invalid("message", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Bedrock refuses a blank system block, and "no system prompt" is what a blank one
        // means here.
        let system = request
            .system
            .filter(|s| !s.trim().is_empty())
            .map(|s| vec![SystemContentBlock::Text(s)]);
        let tool_config = request
            .output_schema
            .as_ref()
            .map(tool_config)
            .transpose()?;
        Ok(Self {
            messages,
            system,
            inference: inference_config(&request.inference),
            tool_config,
            guardrail: request.guardrail,
            output_schema: request.output_schema,
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

fn trace(on: bool) -> GuardrailTrace {
    if on {
        GuardrailTrace::Enabled
    } else {
        GuardrailTrace::Disabled
    }
}

/// `None` when nothing is set, so that the model's defaults apply and no empty object is
/// sent.
fn inference_config(inference: &InferenceConfig) -> Option<InferenceConfiguration> {
    if *inference == InferenceConfig::default() {
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

/// One tool whose input schema is the output schema, and a tool choice that forces it:
/// the model's only way to answer is JSON that the schema describes.
fn tool_config(schema: &OutputSchema) -> Result<ToolConfiguration, ModelError> {
    let spec = ToolSpecification::builder()
        .name(&schema.name)
        .description(&schema.description)
        .input_schema(ToolInputSchema::Json(to_document(&schema.schema)))
        .build()
        .map_err(|e| invalid("output schema tool", e))?;
    let choice = SpecificToolChoice::builder()
        .name(&schema.name)
        .build()
        .map_err(|e| invalid("tool choice", e))?;
    ToolConfiguration::builder()
        .tools(Tool::ToolSpec(spec))
        .tool_choice(ToolChoice::Tool(choice))
        .build()
        .map_err(|e| invalid("tool configuration", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelMessage;
    use serde_json::json;

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
    fn an_output_schema_forces_its_tool() {
        let parts = ConverseParts::new(ModelRequest {
            messages: vec![ModelMessage::user("hi")],
            system: Some("  ".into()),
            output_schema: Some(OutputSchema {
                name: "persona".into(),
                description: "A persona".into(),
                schema: json!({"type": "object"}),
            }),
            ..Default::default()
        })
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
