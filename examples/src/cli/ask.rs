//! The one-shot commands: `ask` (one question, the answer alone on stdout) and `persona`.

use std::io::{Read, Write};

use bedrock_chat_core::{ChatReply, ChatService, InferenceConfig, Persona, SendRequest, UserId};
use serde::Serialize;

use super::exit::Failure;
use super::output::{stream_answer, Answer, Terminal, Thoughts};
use super::{AskArgs, PersonaArgs};

/// The `ask --json` answer: the reply, and the model's reasoning when it reasoned.
#[derive(Serialize)]
struct AskOutput<'a> {
    #[serde(flatten)]
    reply: &'a ChatReply,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<String>,
}

/// `ask`: streams the answer to stdout when stdout is a terminal; to a pipe or file it
/// writes the answer whole once it is complete, so a failure leaves stdout empty. With a
/// `reasoning` budget the model reasons first: its reasoning streams to stderr (`thinking:
/// …`, dimmed on a terminal), so stdout keeps the answer alone.
///
/// # Errors
/// A [`Failure`] whose exit code says what went wrong.
pub async fn ask(
    service: &ChatService,
    user: &UserId,
    args: AskArgs,
    reasoning: Option<u32>,
    terminal: &Terminal,
) -> Result<(), Failure> {
    // Files first: a wrong one fails before stdin is read or anything is sent.
    let attachments = args
        .attach
        .iter()
        .map(|path| super::attach::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    let question = match args.question {
        Some(q) if q != "-" => q,
        _ if terminal.stdin_tty => {
            return Err(Failure::Usage(
                "give the question as an argument, or on stdin".into(),
            ))
        }
        _ => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        }
    };
    let mut request = SendRequest::new(user.clone(), question.trim_end_matches('\n'));
    if let Some(chat_id) = args.chat {
        request = request.in_chat(chat_id);
    }
    if let Some(prompt) = args.system {
        request = request.with_system_prompt(prompt);
    }
    for attachment in attachments {
        request = request.with_attachment(attachment);
    }
    if let Some(budget) = reasoning {
        request = request.with_inference(InferenceConfig::new().with_reasoning_budget(budget));
    }
    let stream = service.send_stream(request).await?;

    let echo = terminal.stdout_tty && !args.json;
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let thoughts = (!args.json).then(|| Thoughts::new(&mut stderr, terminal.err()));
    let answer = stream_answer(
        stream,
        &mut stdout,
        echo,
        thoughts,
        terminal.stderr_tty,
        terminal.err(),
        std::future::pending(),
    )
    .await?;
    let reply = match answer {
        Answer::Done(reply) => reply,
        Answer::Failed { error, .. } => return Err(error.into()),
        // `ask` waits on no stop signal (Ctrl-C ends the process as usual), so this is
        // not reached.
        Answer::Stopped { .. } => {
            return Err(std::io::Error::from(std::io::ErrorKind::Interrupted).into())
        }
    };
    let mut out = stdout.lock();
    if args.json {
        let output = AskOutput {
            reply: &reply,
            reasoning: reply.reasoning(),
        };
        serde_json::to_writer(&mut out, &output).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else if !echo {
        out.write_all(reply.text().as_bytes())?;
        if !reply.text().ends_with('\n') {
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    if terminal.stderr_tty && !args.json {
        terminal.note(&format!(
            "chat {} · {} in / {} out tokens · continue with --chat {}",
            reply.chat_id, reply.usage.input_tokens, reply.usage.output_tokens, reply.chat_id
        ));
    }
    Ok(())
}

/// The `persona --json` answer.
#[derive(Serialize)]
struct PersonaOutput<'a> {
    persona: &'a Persona,
    chat_id: String,
    model: &'a str,
    usage: bedrock_chat_core::Usage,
}

/// `persona`: makes a persona with structured output and starts a conversation with it.
///
/// # Errors
/// A [`Failure`] whose exit code says what went wrong.
pub async fn persona(
    service: &ChatService,
    user: &UserId,
    args: PersonaArgs,
    terminal: &Terminal,
) -> Result<(), Failure> {
    let made = service
        .create_persona(SendRequest::new(user.clone(), args.description))
        .await?;
    let conversation = service.start_conversation(user, &made.persona).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let output = PersonaOutput {
            persona: &made.persona,
            chat_id: conversation.id.to_string(),
            model: &made.model,
            usage: made.usage,
        };
        serde_json::to_writer(&mut out, &output).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else {
        let paint = terminal.out();
        let persona = &made.persona;
        writeln!(out, "{}", paint.bold(&persona.name))?;
        writeln!(out, "{}", persona.description)?;
        writeln!(out)?;
        writeln!(out, "{}", paint.dim("system prompt:"))?;
        writeln!(out, "{}", persona.system_prompt)?;
        writeln!(out)?;
        writeln!(out, "{} {}", paint.dim("chat:"), conversation.id)?;
    }
    out.flush()?;
    if terminal.stderr_tty && !args.json {
        terminal.note(&format!(
            "talk to {} with: chat --chat {}",
            made.persona.name, conversation.id
        ));
    }
    Ok(())
}
