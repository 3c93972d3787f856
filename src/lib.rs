//! firehose: a dedicated chat-bot service for the biggest channels.

pub mod engine;
pub mod sim;
