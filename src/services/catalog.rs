//! Built-in service templates for common APIs (`agent-vault catalog`).
//!
//! Each template follows the API's public authentication convention and suggests the
//! credential keys to store. They are starting points: users copy one into their services
//! file and may narrow it (a path, a port) or rename the keys.

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use super::{Auth, Service, Substitution, Surface};

/// A named, ready-to-use service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Stable identifier, lower-case (`stripe`).
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub service: Service,
    /// The keys the service reads, in the order a user would store them.
    pub suggested_credential_keys: Vec<String>,
}

/// JSON shape: `{id, name, description, host, auth_type, suggested_credential_keys, service}`,
/// where `host` is the joined `host[:port][path]` form.
impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Template", 7)?;
        out.serialize_field("id", self.id)?;
        out.serialize_field("name", self.name)?;
        out.serialize_field("description", self.description)?;
        out.serialize_field("host", &self.service.matcher())?;
        out.serialize_field("auth_type", self.service.auth.type_name())?;
        out.serialize_field("suggested_credential_keys", &self.suggested_credential_keys)?;
        out.serialize_field("service", &self.service)?;
        out.end()
    }
}

/// The template with this id.
pub fn template(id: &str) -> Option<Template> {
    templates().into_iter().find(|t| t.id == id)
}

/// Every built-in template, sorted by id.
// One line per API reads as a table; rustfmt would spread each over eight lines.
#[rustfmt::skip]
pub fn templates() -> Vec<Template> {
    let mut all = vec![
        bearer("airtable", "Airtable", "Airtable Web API (personal access token)", "api.airtable.com", None, "AIRTABLE_TOKEN"),
        api_key("anthropic", "Anthropic", "Claude API", "api.anthropic.com", None, "x-api-key", None, "ANTHROPIC_API_KEY"),
        bearer("asana", "Asana", "Asana REST API", "app.asana.com", Some("/api"), "ASANA_TOKEN"),
        basic("atlassian", "Atlassian Cloud", "Jira and Confluence Cloud REST APIs (account email + API token); replace * with your site: the wildcard would send the token to every Atlassian site, others' too", "*.atlassian.net", "ATLASSIAN_EMAIL", "ATLASSIAN_API_TOKEN"),
        api_key("brave-search", "Brave Search", "Brave Search API", "api.search.brave.com", None, "X-Subscription-Token", None, "BRAVE_API_KEY"),
        api_key("circleci", "CircleCI", "CircleCI API v2", "circleci.com", Some("/api"), "Circle-Token", None, "CIRCLECI_TOKEN"),
        bearer("cloudflare", "Cloudflare", "Cloudflare API v4 (API token)", "api.cloudflare.com", Some("/client/v4"), "CLOUDFLARE_API_TOKEN"),
        bearer("cohere", "Cohere", "Cohere API", "api.cohere.com", None, "COHERE_API_KEY"),
        api_key("datadog", "Datadog", "Datadog API, US1 site (endpoints that also need an application key want a custom DD-APPLICATION-KEY header)", "api.datadoghq.com", None, "DD-API-KEY", None, "DD_API_KEY"),
        bearer("deepseek", "DeepSeek", "DeepSeek API", "api.deepseek.com", None, "DEEPSEEK_API_KEY"),
        bearer("digitalocean", "DigitalOcean", "DigitalOcean API", "api.digitalocean.com", None, "DIGITALOCEAN_TOKEN"),
        api_key("discord", "Discord", "Discord bot API", "discord.com", Some("/api"), "Authorization", Some("Bot "), "DISCORD_BOT_TOKEN"),
        api_key("elevenlabs", "ElevenLabs", "ElevenLabs text-to-speech API", "api.elevenlabs.io", None, "xi-api-key", None, "ELEVENLABS_API_KEY"),
        api_key("exa", "Exa", "Exa search API", "api.exa.ai", None, "x-api-key", None, "EXA_API_KEY"),
        api_key("figma", "Figma", "Figma REST API (personal access token)", "api.figma.com", None, "X-Figma-Token", None, "FIGMA_TOKEN"),
        bearer("fireworks", "Fireworks AI", "Fireworks AI inference API", "api.fireworks.ai", None, "FIREWORKS_API_KEY"),
        api_key("gemini", "Google Gemini", "Gemini API (Google AI Studio key)", "generativelanguage.googleapis.com", None, "x-goog-api-key", None, "GEMINI_API_KEY"),
        bearer("github", "GitHub", "GitHub REST and GraphQL APIs", "api.github.com", None, "GITHUB_TOKEN"),
        bearer("gitlab", "GitLab", "GitLab.com REST API (personal access token)", "gitlab.com", Some("/api"), "GITLAB_TOKEN"),
        bearer("groq", "Groq", "Groq inference API", "api.groq.com", None, "GROQ_API_KEY"),
        bearer("hubspot", "HubSpot", "HubSpot API (private app token)", "api.hubapi.com", None, "HUBSPOT_ACCESS_TOKEN"),
        bearer("huggingface", "Hugging Face", "Hugging Face Hub API", "huggingface.co", None, "HF_TOKEN"),
        bearer("huggingface-inference", "Hugging Face Inference", "Hugging Face inference providers router", "router.huggingface.co", None, "HF_TOKEN"),
        api_key("linear", "Linear", "Linear GraphQL API (personal API key, sent without a prefix)", "api.linear.app", None, "Authorization", None, "LINEAR_API_KEY"),
        bearer("mistral", "Mistral AI", "Mistral AI API", "api.mistral.ai", None, "MISTRAL_API_KEY"),
        bearer("netlify", "Netlify", "Netlify API", "api.netlify.com", None, "NETLIFY_AUTH_TOKEN"),
        bearer("notion", "Notion", "Notion API (integration token; clients still send Notion-Version)", "api.notion.com", None, "NOTION_TOKEN"),
        bearer("npm", "npm", "npm registry (automation or granular access token)", "registry.npmjs.org", None, "NPM_TOKEN"),
        bearer("openai", "OpenAI", "OpenAI API", "api.openai.com", None, "OPENAI_API_KEY"),
        bearer("openrouter", "OpenRouter", "OpenRouter API", "openrouter.ai", Some("/api"), "OPENROUTER_API_KEY"),
        api_key("pagerduty", "PagerDuty", "PagerDuty REST API", "api.pagerduty.com", None, "Authorization", Some("Token token="), "PAGERDUTY_API_KEY"),
        bearer("perplexity", "Perplexity", "Perplexity API", "api.perplexity.ai", None, "PERPLEXITY_API_KEY"),
        api_key("postmark", "Postmark", "Postmark email API (server token)", "api.postmarkapp.com", None, "X-Postmark-Server-Token", None, "POSTMARK_SERVER_TOKEN"),
        bearer("render", "Render", "Render API", "api.render.com", None, "RENDER_API_KEY"),
        bearer("replicate", "Replicate", "Replicate API", "api.replicate.com", None, "REPLICATE_API_TOKEN"),
        bearer("resend", "Resend", "Resend email API", "api.resend.com", None, "RESEND_API_KEY"),
        bearer("sendgrid", "SendGrid", "Twilio SendGrid email API", "api.sendgrid.com", None, "SENDGRID_API_KEY"),
        bearer("sentry", "Sentry", "Sentry API (auth token)", "sentry.io", Some("/api"), "SENTRY_AUTH_TOKEN"),
        bearer("slack", "Slack", "Slack Web API (bot or user token)", "slack.com", Some("/api"), "SLACK_BOT_TOKEN"),
        bearer("stripe", "Stripe", "Stripe API (secret or restricted key)", "api.stripe.com", None, "STRIPE_SECRET_KEY"),
        bearer("tavily", "Tavily", "Tavily search API", "api.tavily.com", None, "TAVILY_API_KEY"),
        telegram(),
        bearer("together", "Together AI", "Together AI inference API", "api.together.xyz", None, "TOGETHER_API_KEY"),
        basic("twilio", "Twilio", "Twilio REST API (account SID + auth token, or API key SID + secret)", "api.twilio.com", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
        bearer("vercel", "Vercel", "Vercel REST API", "api.vercel.com", None, "VERCEL_TOKEN"),
        bearer("voyage", "Voyage AI", "Voyage AI embeddings API", "api.voyageai.com", None, "VOYAGE_API_KEY"),
        bearer("xai", "xAI", "xAI Grok API", "api.x.ai", None, "XAI_API_KEY"),
    ];
    all.sort_by_key(|t| t.id);
    all
}

fn make(
    id: &'static str,
    name: &'static str,
    description: &'static str,
    host: &str,
    path: Option<&str>,
    auth: Auth,
    substitutions: Vec<Substitution>,
) -> Template {
    let service = Service {
        host: host.into(),
        port: None,
        path: path.map(Into::into),
        name: Some(name.into()),
        description: Some(description.into()),
        enabled: true,
        auth,
        substitutions,
        scrub_responses: true,
    };
    let suggested_credential_keys = service
        .credential_keys()
        .into_iter()
        .map(String::from)
        .collect();
    Template {
        id,
        name,
        description,
        service,
        suggested_credential_keys,
    }
}

fn bearer(
    id: &'static str,
    name: &'static str,
    description: &'static str,
    host: &str,
    path: Option<&str>,
    token: &str,
) -> Template {
    let auth = Auth::Bearer {
        token: token.into(),
    };
    make(id, name, description, host, path, auth, vec![])
}

#[allow(clippy::too_many_arguments)]
fn api_key(
    id: &'static str,
    name: &'static str,
    description: &'static str,
    host: &str,
    path: Option<&str>,
    header: &str,
    prefix: Option<&str>,
    key: &str,
) -> Template {
    let auth = Auth::ApiKey {
        key: key.into(),
        header: header.into(),
        prefix: prefix.map(Into::into),
    };
    make(id, name, description, host, path, auth, vec![])
}

fn basic(
    id: &'static str,
    name: &'static str,
    description: &'static str,
    host: &str,
    username: &str,
    password: &str,
) -> Template {
    let auth = Auth::Basic {
        username: username.into(),
        password: password.into(),
    };
    let mut template = make(id, name, description, host, None, auth, vec![]);
    // Username first: the order a user reads them in the service.
    template.suggested_credential_keys = vec![username.into(), password.into()];
    template
}

/// The bot token is part of the URL path (`/bot<token>/sendMessage`), so the agent writes a
/// placeholder there and the broker substitutes it.
fn telegram() -> Template {
    let substitution = Substitution {
        placeholder: "__telegram_bot_token__".into(),
        key: "TELEGRAM_BOT_TOKEN".into(),
        surfaces: vec![Surface::Path],
    };
    make(
        "telegram",
        "Telegram",
        "Telegram Bot API; call /bot__telegram_bot_token__/<method> and the token is filled in",
        "api.telegram.org",
        None,
        Auth::Passthrough,
        vec![substitution],
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::services::{parse_yaml, to_yaml, validate};

    #[test]
    fn every_template_is_valid_and_ids_are_unique() {
        let all = templates();
        assert!(all.len() >= 25, "{}", all.len());
        let ids: BTreeSet<_> = all.iter().map(|t| t.id).collect();
        assert_eq!(ids.len(), all.len(), "duplicate template id");
        for template in &all {
            assert!(
                template
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}",
                template.id
            );
            validate(std::slice::from_ref(&template.service))
                .unwrap_or_else(|e| panic!("{}: {e}", template.id));
            let keys: BTreeSet<&str> = template
                .suggested_credential_keys
                .iter()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, template.service.credential_keys(), "{}", template.id);
        }
        // Together they form a valid list too: no two templates claim the same host and path.
        let services: Vec<Service> = all.iter().map(|t| t.service.clone()).collect();
        validate(&services).unwrap();
        assert_eq!(
            parse_yaml(&to_yaml("catalog", &services).unwrap()).unwrap(),
            services
        );
    }

    #[test]
    fn well_known_templates() {
        let anthropic = template("anthropic").unwrap();
        assert_eq!(anthropic.service.host, "api.anthropic.com");
        assert_eq!(
            anthropic.service.auth,
            Auth::ApiKey {
                key: "ANTHROPIC_API_KEY".into(),
                header: "x-api-key".into(),
                prefix: None
            }
        );
        let telegram = template("telegram").unwrap();
        assert_eq!(telegram.service.auth, Auth::Passthrough);
        assert_eq!(telegram.suggested_credential_keys, ["TELEGRAM_BOT_TOKEN"]);
        assert_eq!(
            template("twilio").unwrap().suggested_credential_keys,
            ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]
        );
        assert!(template("nope").is_none());
    }

    #[test]
    fn json_shape() {
        let value = serde_json::to_value(template("discord").unwrap()).unwrap();
        assert_eq!(value["id"], "discord");
        assert_eq!(value["host"], "discord.com/api");
        assert_eq!(value["auth_type"], "api-key");
        assert_eq!(value["suggested_credential_keys"][0], "DISCORD_BOT_TOKEN");
        assert_eq!(value["service"]["host"], "discord.com");
        assert_eq!(value["service"]["path"], "/api");
        assert_eq!(value["service"]["auth"]["prefix"], "Bot ");
    }
}
