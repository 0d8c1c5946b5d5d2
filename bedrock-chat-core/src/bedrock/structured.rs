//! Typed structured output: a reply forced through a JSON-schema tool, deserialized.

use serde::de::DeserializeOwned;

use super::BedrockChatModel;
use crate::error::ModelError;
use crate::model::{ChatModel, ModelRequest, ModelResponse, OutputSchema};

/// A structured reply: the value the model produced, and the response it came in (text,
/// usage, stop reason, latency).
#[derive(Clone, Debug, PartialEq)]
pub struct StructuredReply<T> {
    /// The model's output, deserialized.
    pub value: T,
    /// The whole response; `structured` holds the same value as JSON.
    pub response: ModelResponse,
}

impl BedrockChatModel {
    /// Asks for output that fits `schema` (through Bedrock tool use, as
    /// [`ModelRequest::output_schema`] does) and deserializes it into `T`.
    ///
    /// `schema` should describe `T`: the model sees only the schema.
    ///
    /// ```no_run
    /// use bedrock_chat_core::bedrock::{BedrockChatModel, BedrockConfig};
    /// use bedrock_chat_core::{ModelMessage, ModelRequest, OutputSchema};
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize)]
    /// struct Persona {
    ///     name: String,
    ///     tone: String,
    /// }
    ///
    /// # async fn run() -> Result<(), bedrock_chat_core::ModelError> {
    /// let model = BedrockChatModel::load(BedrockConfig::new("amazon.nova-micro-v1:0")).await;
    /// let request = ModelRequest::new([ModelMessage::user("A cheerful pirate who loves maps")]);
    /// let schema = OutputSchema {
    ///     name: "persona".into(),
    ///     description: "The persona described by the user".into(),
    ///     schema: serde_json::json!({
    ///         "type": "object",
    ///         "properties": {"name": {"type": "string"}, "tone": {"type": "string"}},
    ///         "required": ["name", "tone"]
    ///     }),
    /// };
    /// let persona = model.converse_structured::<Persona>(request, schema).await?.value;
    /// println!("{} speaks in a {} tone", persona.name, persona.tone);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ModelError::SchemaViolation`] when the model does not call the tool or its output
    /// does not deserialize into `T`; any other [`ModelError`] as
    /// [`converse`](ChatModel::converse).
    pub async fn converse_structured<T: DeserializeOwned>(
        &self,
        mut request: ModelRequest,
        schema: OutputSchema,
    ) -> Result<StructuredReply<T>, ModelError> {
        let name = schema.name.clone();
        request.output_schema = Some(schema);
        let response = self.converse(request).await?;
        let Some(json) = response.structured.clone() else {
            return Err(ModelError::schema_violation(format!(
                "the model returned no `{name}` output"
            )));
        };
        let value = serde_json::from_value(json).map_err(|e| {
            ModelError::schema_violation(format!(
                "the `{name}` output does not fit the expected type: {e}"
            ))
            .with_source(e)
        })?;
        Ok(StructuredReply { value, response })
    }
}
