//! Full-text search on the read side (`GET /v1/events?q=`, `GET /v1/titles?q=`): an
//! in-RAM `tantivy` index of every event's and title's words, with typo tolerance (each
//! word matches terms within an edit distance that grows with its length, transpositions
//! counting one, and as a prefix) and `did_you_mean` suggestions. An events search
//! without a place is the index's alone ([`SearchIndex::event_page`]): it also holds each
//! event's city, country, venue, canceled flag, start and folded name, and ranks only the
//! page out of the matches (a top-k on fast fields, with a count). Places, distances and
//! titles' shows are answered from the read models and the catalog, with the index saying
//! which events or titles match the words.
//!
//! The index follows the read models lazily: the shard followers note the events that an
//! outcome made, changed or canceled, the control follower notes relisted events and
//! changed titles ([`SearchChanges`]), and a search first re-indexes what was noted since
//! the last one (one commit), so a search never misses a change applied before it began.
//! The first search indexes everything (a read model restored from a snapshot included).
//! A shard follower notes under its model's write lock and a search refreshes while it
//! holds every model's read lock, so the index it ranks with agrees with the models it
//! then reads the page's events from. The first build (everything) is the exception: it
//! runs before the search takes those locks and holds them a thousand events at a time
//! ([`SearchIndex::prepare`]), so it never keeps the followers from applying outcomes for
//! long; the search's refresh then indexes what they changed meanwhile.

use crate::catalog::Catalog;
use crate::read_model::EventFilter;
use crate::read_model::ReadModel;
use crate::routes::catalog::SortKey;
use engine::{EventId, Reply};
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, RwLock};
use tantivy::collector::sort_key::{NaturalComparator, SortByStaticFastValue, SortByString};
use tantivy::collector::{
    Count, DocSetCollector, SegmentSortKeyComputer, SortKeyComputer, TopDocs,
};
use tantivy::fastfield::Column;
use tantivy::query::{
    BooleanQuery, EnableScoring, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{
    DocAddress, DocId, DocSet, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Score,
    Searcher, SegmentReader, TantivyDocument, Term, TERMINATED,
};

/// Words of a query that are searched (more are ignored: a query is a few words).
pub(crate) const QUERY_WORDS_MAX: usize = 8;
/// The index writer's memory (tantivy's minimum is 15 MB).
const WRITER_MEMORY_BYTES: usize = 20_000_000;
/// Documents looked at for a misspelt word's suggestion.
const SUGGESTION_DOCS_MAX: usize = 20;
const TOKENIZER: &str = "folded";

/// What is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Event,
    Title,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Title => "title",
        }
    }
}

/// Events and titles whose words changed since the last search.
#[derive(Default)]
pub(crate) struct SearchChanges {
    changed: Mutex<ChangeSet>,
}

#[derive(Default)]
struct ChangeSet {
    events: BTreeSet<EventId>,
    titles: BTreeSet<(String, String)>,
}

impl SearchChanges {
    /// Notes the event an outcome's reply made, changed or canceled.
    pub(crate) fn note_reply(&self, reply: &Reply) {
        let event = match reply {
            Reply::EventCreated { event, .. }
            | Reply::EventUpdated { event, .. }
            | Reply::EventCanceled { event, .. } => *event,
            _ => return,
        };
        self.note_event(event);
    }

    pub(crate) fn note_event(&self, event: EventId) {
        self.lock().events.insert(event);
    }

    /// A title changed: it, and every event listed under it.
    pub(crate) fn note_title(&self, tenant: &str, title: &str) {
        self.lock()
            .titles
            .insert((tenant.to_string(), title.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChangeSet> {
        self.changed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self) -> ChangeSet {
        std::mem::take(&mut *self.lock())
    }
}

/// The index's fields. An event's filters and sort keys are in the index too (city,
/// country, venue, canceled, start, folded name), so a search that selects no place is
/// answered by the index alone: the page in order and the total, without walking the
/// matching events.
#[derive(Clone, Copy)]
struct Fields {
    /// `e<event id>` or `t<title ordinal>`: what a re-index deletes by.
    key: Field,
    kind: Field,
    /// The event id or the title's ordinal ([`Indexed::titles`]); an event's ties are
    /// broken by it.
    id: Field,
    text: Field,
    /// An event's city, country and venue, [`fold`]ed: `city=`, `country=` and `venue=`.
    city: Field,
    country: Field,
    venue: Field,
    /// An event's [`LIVE`] or [`CANCELED`].
    status: Field,
    /// An event's start (ms), for `from`/`to` and `sort=date`.
    starts_at: Field,
    /// An event's name, [`fold`]ed, for `sort=name` (a string fast field: its terms'
    /// order is the folded names' order).
    name: Field,
}

const LIVE: &str = "live";
const CANCELED: &str = "canceled";
const STARTS_AT: &str = "starts_at";
const NAME: &str = "name";
const ID: &str = "id";

struct Indexed {
    writer: IndexWriter,
    reader: IndexReader,
    fields: Fields,
    title_ordinals: HashMap<(String, String), u64>,
    /// Something was added or deleted since the last commit.
    dirty: bool,
}

/// The search index of this ingress.
#[derive(Default)]
pub(crate) struct SearchIndex {
    /// Noted by the shard followers.
    pub(crate) changes: std::sync::Arc<SearchChanges>,
    indexed: Mutex<Option<Indexed>>,
    /// Title ordinals, shared with searches that read outside the writer's lock.
    titles: RwLock<Vec<(String, String)>>,
}

/// What a text search found: event ids or (tenant, title id), and a spelling suggestion.
pub(crate) struct TextMatch<T> {
    pub(crate) found: HashSet<T>,
    pub(crate) did_you_mean: Option<String>,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let key = builder.add_text_field("key", STRING);
    let kind = builder.add_text_field("kind", STRING);
    let id = builder.add_u64_field(ID, FAST);
    let text_options = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
        .set_stored();
    let text = builder.add_text_field("text", text_options);
    let city = builder.add_text_field("city", STRING);
    let country = builder.add_text_field("country", STRING);
    let venue = builder.add_text_field("venue", STRING);
    let status = builder.add_text_field("status", STRING);
    let starts_at = builder.add_u64_field(STARTS_AT, FAST);
    // Fast only (a column of term ordinals and its dictionary), not searched.
    let name = builder.add_text_field(NAME, TextOptions::default().set_fast("raw"));
    (
        builder.build(),
        Fields {
            key,
            kind,
            id,
            text,
            city,
            country,
            venue,
            status,
            starts_at,
            name,
        },
    )
}

/// Lower case char by char, as `EventFilter::admits` compares places and the events
/// search compares names (`str::to_lowercase` would differ on a final sigma); byte order
/// of the result is the order of its chars.
pub(crate) fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// Lower case, accents folded ("Café" finds "cafe"), words longer than 40 bytes dropped.
fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The query's words as the index holds them.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    while stream.advance() {
        words.push(stream.token().text.clone());
    }
    words
}

/// Edits a word may be away from a term and still match: none for short words (any typo
/// in three letters is another word), one up to six letters, two past that.
fn distance_for(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

fn event_text(event: &crate::read_model::EventRecord, catalog: &Catalog) -> String {
    let spec = &event.spec;
    let title = catalog
        .listing(event.id)
        .and_then(|(tenant, listing)| {
            listing
                .title
                .as_deref()
                .and_then(|title| catalog.title(tenant, title))
        })
        .map(|title| title.name.as_str())
        .unwrap_or_default();
    format!(
        "{} {} {} {} {}",
        spec.name, title, spec.venue, spec.city, spec.description
    )
}

impl Indexed {
    fn new() -> tantivy::Result<Indexed> {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        index.tokenizers().register(TOKENIZER, analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Indexed {
            writer,
            reader,
            fields,
            title_ordinals: HashMap::new(),
            dirty: false,
        })
    }

    fn put_event(
        &mut self,
        models: &[&ReadModel],
        shard_count: u32,
        event: EventId,
        catalog: &Catalog,
    ) {
        let key = format!("e{}", u64::from(event));
        self.dirty = true;
        self.writer
            .delete_term(Term::from_field_text(self.fields.key, &key));
        let model = models[engine::shard_of(event.into(), shard_count) as usize];
        if let Some(record) = model.event(event) {
            let mut doc = TantivyDocument::default();
            doc.add_text(self.fields.key, &key);
            doc.add_text(self.fields.kind, Kind::Event.word());
            doc.add_u64(self.fields.id, event.into());
            doc.add_text(self.fields.text, event_text(record, catalog));
            doc.add_text(self.fields.city, fold(&record.spec.city));
            doc.add_text(self.fields.country, fold(&record.spec.country));
            doc.add_text(self.fields.venue, fold(&record.spec.venue));
            doc.add_text(
                self.fields.status,
                if record.canceled { CANCELED } else { LIVE },
            );
            doc.add_u64(self.fields.starts_at, record.spec.starts_at_ms);
            doc.add_text(self.fields.name, fold(&record.spec.name));
            // Only fails once the writer's threads died: a bug.
            self.writer
                .add_document(doc)
                .expect("the search index writer accepts documents");
        }
    }

    /// `titles` is the shared ordinal table (title ordinal → (tenant, title id); ordinals
    /// are never reused).
    fn put_title(
        &mut self,
        titles: &RwLock<Vec<(String, String)>>,
        tenant: &str,
        title: &str,
        catalog: &Catalog,
    ) {
        let pair = (tenant.to_string(), title.to_string());
        let ordinal = match self.title_ordinals.get(&pair) {
            Some(ordinal) => *ordinal,
            None => {
                let mut titles = titles
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let ordinal = titles.len() as u64;
                titles.push(pair.clone());
                self.title_ordinals.insert(pair, ordinal);
                ordinal
            }
        };
        let key = format!("t{ordinal}");
        self.dirty = true;
        self.writer
            .delete_term(Term::from_field_text(self.fields.key, &key));
        if let Some(record) = catalog.title(tenant, title) {
            let mut doc = TantivyDocument::default();
            doc.add_text(self.fields.key, &key);
            doc.add_text(self.fields.kind, Kind::Title.word());
            doc.add_u64(self.fields.id, ordinal);
            doc.add_text(
                self.fields.text,
                format!("{} {} {}", record.name, record.kind, record.description),
            );
            // Never selected by an events search; present so that every document has
            // them (a column of one value each reads fastest).
            doc.add_u64(self.fields.starts_at, 0);
            doc.add_text(self.fields.name, fold(&record.name));
            self.writer
                .add_document(doc)
                .expect("the search index writer accepts documents");
        }
    }
}

/// Events indexed per hold of the read models' locks while the index is first built.
const BUILD_EVENTS_PER_LOCK: usize = 1_000;

impl SearchIndex {
    /// Builds the index the first time without holding the read models' locks for the whole
    /// build (about a second at 100,000 events, during which the shard followers could not
    /// apply an outcome, so no write would be answered): they are taken for
    /// [`BUILD_EVENTS_PER_LOCK`] events at a time, models first and then the catalog, in
    /// the order every handler takes them. What the followers change meanwhile is noted
    /// and indexed by the search's own refresh, under the locks. Searches wait for the
    /// build (the index's own lock), writes do not: so a search calls this *before* it
    /// takes the read models' locks. A no-op once built. Says how many times it held the
    /// models' locks to index events.
    pub(crate) fn prepare(
        &self,
        models: &[&RwLock<ReadModel>],
        catalog: &RwLock<Catalog>,
    ) -> tantivy::Result<usize> {
        let mut guard = self
            .indexed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_some() {
            return Ok(0);
        }
        // Everything from here on is read after this: changes noted before are covered.
        drop(self.changes.take());
        fn read(model: &RwLock<ReadModel>) -> std::sync::RwLockReadGuard<'_, ReadModel> {
            model
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
        let catalog = || {
            catalog
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        let shard_count = models.len() as u32;
        let mut indexed = Indexed::new()?;
        let mut holds = 0;
        for model in models {
            let events: Vec<EventId> = read(model).event_ids().collect();
            for chunk in events.chunks(BUILD_EVENTS_PER_LOCK) {
                holds += 1;
                let held: Vec<_> = models.iter().map(|model| read(model)).collect();
                let refs: Vec<&ReadModel> = held.iter().map(|model| &**model).collect();
                let catalog = catalog();
                for &event in chunk {
                    indexed.put_event(&refs, shard_count, event, &catalog);
                }
            }
        }
        {
            let catalog = catalog();
            for (tenant, title, _) in catalog.all_titles() {
                indexed.put_title(&self.titles, tenant, title, &catalog);
            }
        }
        indexed.writer.commit()?;
        indexed.reader.reload()?;
        indexed.dirty = false;
        *guard = Some(indexed);
        Ok(holds)
    }

    /// Documents in the index, if it is built.
    #[cfg(test)]
    pub(crate) fn indexed_docs(&self) -> Option<u64> {
        let guard = self
            .indexed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard
            .as_ref()
            .map(|indexed| indexed.reader.searcher().num_docs())
    }
}

impl SearchIndex {
    /// Brings the index up to date with the read models and the catalog: everything the
    /// first time, then what was noted since (`catalog_changes`: the control follower's
    /// notes). A reader of the index as it then is.
    fn refresh(
        &self,
        models: &[&ReadModel],
        catalog: &Catalog,
        catalog_changes: &SearchChanges,
    ) -> tantivy::Result<(IndexReader, Fields)> {
        let mut guard = self
            .indexed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Taken before the models are read: a change applied after this is noted again
        // and indexed by the next search.
        let mut changes = self.changes.take();
        let catalog_noted = catalog_changes.take();
        changes.events.extend(catalog_noted.events);
        changes.titles.extend(catalog_noted.titles);
        let shard_count = models.len() as u32;
        let indexed = match guard.as_mut() {
            Some(indexed) => {
                let mut events = changes.events;
                for (tenant, title) in &changes.titles {
                    indexed.put_title(&self.titles, tenant, title, catalog);
                    events.extend(catalog.shows(tenant, title));
                }
                for event in events {
                    indexed.put_event(models, shard_count, event, catalog);
                }
                indexed
            }
            None => {
                let mut indexed = Indexed::new()?;
                for model in models {
                    for event in model.event_ids() {
                        indexed.put_event(models, shard_count, event, catalog);
                    }
                }
                for (tenant, title, _) in catalog.all_titles() {
                    indexed.put_title(&self.titles, tenant, title, catalog);
                }
                indexed.dirty = true;
                guard.insert(indexed)
            }
        };
        if indexed.dirty {
            indexed.writer.commit()?;
            indexed.reader.reload()?;
            indexed.dirty = false;
        }
        Ok((indexed.reader.clone(), indexed.fields))
    }

    /// The events or titles (by ordinal) whose words match every word of `query`, each
    /// within its typo distance or as a prefix; and, when a word is not in the index as
    /// typed, the query with it replaced by the closest word that is.
    fn search(
        &self,
        kind: Kind,
        query: &str,
        models: &[&ReadModel],
        catalog: &Catalog,
        catalog_changes: &SearchChanges,
    ) -> tantivy::Result<TextMatch<u64>> {
        let (reader, fields) = self.refresh(models, catalog, catalog_changes)?;
        let searcher = reader.searcher();
        let words = query_words(query);
        let mut clauses = vec![(Occur::Must, of_kind(fields, kind))];
        clauses.extend(word_clauses(fields, &words));
        let matched = searcher.search(&BooleanQuery::new(clauses), &DocSetCollector)?;
        let mut found = HashSet::with_capacity(matched.len());
        let mut columns = HashMap::new();
        for address in matched {
            if let std::collections::hash_map::Entry::Vacant(entry) =
                columns.entry(address.segment_ord)
            {
                entry.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64(ID)?,
                );
            }
            if let Some(id) = columns[&address.segment_ord].first(address.doc_id) {
                found.insert(id);
            }
        }
        Ok(TextMatch {
            found,
            did_you_mean: suggestion(&searcher, fields, kind, &words)?,
        })
    }

    /// The events matching `query` (see [`SearchIndex::search`]).
    pub(crate) fn events(
        &self,
        query: &str,
        models: &[&ReadModel],
        catalog: &Catalog,
        catalog_changes: &SearchChanges,
    ) -> tantivy::Result<TextMatch<EventId>> {
        let matched = self.search(Kind::Event, query, models, catalog, catalog_changes)?;
        Ok(TextMatch {
            found: matched
                .found
                .into_iter()
                .filter_map(|id| u32::try_from(id).ok().map(EventId))
                .collect(),
            did_you_mean: matched.did_you_mean,
        })
    }

    /// A page of the events that `query` selects, in its order, and how many it selects:
    /// the index's own answer (its filters are terms and ranges, its sort keys fast
    /// fields), so only the page is ranked out of the matches and nothing is walked in
    /// the read models. Ties are broken by event id, as `routes::catalog` orders.
    pub(crate) fn event_page(
        &self,
        query: &EventQuery<'_>,
        models: &[&ReadModel],
        catalog: &Catalog,
        catalog_changes: &SearchChanges,
    ) -> tantivy::Result<EventPage> {
        let filter = query.filter;
        assert!(
            filter.words.is_empty() && filter.tenant.is_none(),
            "the index has no substring words nor tenants: such a filter walks the read models"
        );
        let (reader, fields) = self.refresh(models, catalog, catalog_changes)?;
        let searcher = reader.searcher();
        let words = query.words.map(query_words).unwrap_or_default();
        let selected = if filter.include_canceled {
            of_kind(fields, Kind::Event)
        } else {
            term_query(fields.status, LIVE)
        };
        let mut clauses = vec![(Occur::Must, selected)];
        for (field, value) in [
            (fields.city, &filter.city),
            (fields.country, &filter.country),
            (fields.venue, &filter.venue),
        ] {
            if let Some(value) = value {
                clauses.push((Occur::Must, term_query(field, &fold(value))));
            }
        }
        if filter.from_ms.is_some() || filter.to_ms.is_some() {
            let bound = |ms: Option<u64>| {
                ms.map_or(Bound::Unbounded, |ms| {
                    Bound::Included(Term::from_field_u64(fields.starts_at, ms))
                })
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(bound(filter.from_ms), bound(filter.to_ms))),
            ));
        }
        clauses.extend(word_clauses(fields, &words));
        let selection = BooleanQuery::new(clauses);
        let offset = (u64::from(query.page.max(1)) - 1).saturating_mul(u64::from(query.per_page));
        let (total, ids) = if offset >= searcher.num_docs() {
            // Past every document: nothing to rank (a top-k of `offset` would reserve
            // room for it).
            (searcher.search(&selection, &Count)?, Vec::new())
        } else {
            let top =
                TopDocs::with_limit(query.per_page.max(1) as usize).and_offset(offset as usize);
            let by_date = (
                SortByStaticFastValue::<u64>::for_field(STARTS_AT),
                Order::Asc,
            );
            let by_name = (SortByString::for_field(NAME), Order::Asc);
            let by_id = (SortByStaticFastValue::<u64>::for_field(ID), Order::Asc);
            match query.sort {
                [SortKey::Date] => {
                    ranked(&searcher, &selection, top, ByStart, |key| Some(key.0 .1))?
                }
                [SortKey::Name] => {
                    ranked(&searcher, &selection, top, (by_name, by_id), |key| key.1)?
                }
                [SortKey::Date, SortKey::Name] => ranked(
                    &searcher,
                    &selection,
                    top,
                    (by_date, by_name, by_id),
                    |key| key.2,
                )?,
                [SortKey::Name, SortKey::Date] => ranked(
                    &searcher,
                    &selection,
                    top,
                    (by_name, by_date, by_id),
                    |key| key.2,
                )?,
                other => unreachable!("sort {other:?} is by distance: a search by place"),
            }
        };
        Ok(EventPage {
            events: ids
                .into_iter()
                .filter_map(|id| u32::try_from(id).ok().map(EventId))
                .collect(),
            total: total as u64,
            did_you_mean: suggestion(&searcher, fields, Kind::Event, &words)?,
        })
    }

    /// The titles matching `query`, as (tenant, title id).
    pub(crate) fn titles(
        &self,
        query: &str,
        models: &[&ReadModel],
        catalog: &Catalog,
        catalog_changes: &SearchChanges,
    ) -> tantivy::Result<TextMatch<(String, String)>> {
        let matched = self.search(Kind::Title, query, models, catalog, catalog_changes)?;
        let titles = self
            .titles
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(TextMatch {
            found: matched
                .found
                .into_iter()
                .filter_map(|ordinal| titles.get(ordinal as usize).cloned())
                .collect(),
            did_you_mean: matched.did_you_mean,
        })
    }
}

/// A search of events by the index alone ([`SearchIndex::event_page`]).
pub(crate) struct EventQuery<'a> {
    /// `q`, if any.
    pub(crate) words: Option<&'a str>,
    /// Without substring words or a tenant.
    pub(crate) filter: &'a EventFilter,
    /// Date and name keys (distance needs a place: not from the index).
    pub(crate) sort: &'a [SortKey],
    pub(crate) page: u32,
    pub(crate) per_page: u32,
}

/// A page of events in order, how many match, and a spelling suggestion.
pub(crate) struct EventPage {
    pub(crate) events: Vec<EventId>,
    pub(crate) total: u64,
    pub(crate) did_you_mean: Option<String>,
}

/// How many documents `selection` selects, and the ids of the page `top` of them in the
/// order of `keys` (whose key `id_of` gives the id).
fn ranked<K>(
    searcher: &Searcher,
    selection: &dyn Query,
    top: TopDocs,
    keys: K,
    id_of: impl Fn(&K::SortKey) -> Option<u64>,
) -> tantivy::Result<(usize, Vec<u64>)>
where
    K: SortKeyComputer + Send + 'static,
{
    let (total, page) = searcher.search(selection, &(Count, top.order_by(keys)))?;
    Ok((
        total,
        page.iter().filter_map(|(key, _)| id_of(key)).collect(),
    ))
}

/// The first `limit` documents `query` selects, in index order, without scoring them:
/// what a top `limit` by score gives when every score is equal (a term every document of
/// a kind holds once, and a fuzzy term's constant score), ties going to the lower address.
fn first_matches(
    searcher: &Searcher,
    query: &dyn Query,
    limit: usize,
) -> tantivy::Result<Vec<DocAddress>> {
    let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
    let mut found = Vec::with_capacity(limit);
    for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
        let mut scorer = weight.scorer(segment, 1.0)?;
        let alive = segment.alive_bitset();
        let mut doc = scorer.doc();
        while doc != TERMINATED && found.len() < limit {
            if alive.is_none_or(|alive| alive.is_alive(doc)) {
                found.push(DocAddress::new(segment_ord as u32, doc));
            }
            doc = scorer.advance();
        }
    }
    Ok(found)
}

/// Events by start, then id, ascending: the most common order (`GET /v1/events`'s
/// default) read as one pair per document and compared at once (tantivy's tuple of
/// optional keys, each in its own order, compares part by part through an enum).
struct ByStart;

impl SortKeyComputer for ByStart {
    /// Reversed: a top-k keeps the greatest keys.
    type SortKey = Reverse<(u64, u64)>;
    type Child = ByStartInSegment;
    type Comparator = NaturalComparator;

    fn segment_sort_key_computer(&self, segment: &SegmentReader) -> tantivy::Result<Self::Child> {
        let fast_fields = segment.fast_fields();
        Ok(ByStartInSegment {
            starts_at: fast_fields.u64(STARTS_AT)?,
            id: fast_fields.u64(ID)?,
        })
    }
}

struct ByStartInSegment {
    starts_at: Column<u64>,
    id: Column<u64>,
}

impl SegmentSortKeyComputer for ByStartInSegment {
    type SortKey = Reverse<(u64, u64)>;
    type SegmentSortKey = Reverse<(u64, u64)>;
    type SegmentComparator = NaturalComparator;

    fn segment_sort_key(&mut self, doc: DocId, _score: Score) -> Self::SegmentSortKey {
        // Every document has both (a title's start is 0: never selected here).
        Reverse((
            self.starts_at.first(doc).unwrap_or(u64::MAX),
            self.id.first(doc).unwrap_or(u64::MAX),
        ))
    }

    fn convert_segment_sort_key(&self, key: Self::SegmentSortKey) -> Self::SortKey {
        key
    }
}

/// The words of a query that are searched.
fn query_words(query: &str) -> Vec<String> {
    words(query).into_iter().take(QUERY_WORDS_MAX).collect()
}

fn term_query(field: Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::Basic,
    ))
}

fn of_kind(fields: Fields, kind: Kind) -> Box<dyn Query> {
    term_query(fields.kind, kind.word())
}

/// One clause a word: it must match, within its typo distance or as a prefix.
fn word_clauses(fields: Fields, words: &[String]) -> Vec<(Occur, Box<dyn Query>)> {
    words
        .iter()
        .map(|word| {
            let term = Term::from_field_text(fields.text, word);
            let either: Vec<(Occur, Box<dyn Query>)> = vec![
                (
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new(term.clone(), distance_for(word), true)),
                ),
                (
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new_prefix(term, 0, true)),
                ),
            ];
            (
                Occur::Must,
                Box::new(BooleanQuery::new(either)) as Box<dyn Query>,
            )
        })
        .collect()
}

/// The query with each word the index does not hold as typed replaced by the closest
/// word of the documents (of `kind`) its fuzzy form finds (the most frequent among
/// equals); `None` when no word was replaced.
fn suggestion(
    searcher: &Searcher,
    fields: Fields,
    kind: Kind,
    words: &[String],
) -> tantivy::Result<Option<String>> {
    let mut suggested = words.to_vec();
    let mut changed = false;
    for (index, word) in words.iter().enumerate() {
        let term = Term::from_field_text(fields.text, word);
        if searcher.doc_freq(&term)? > 0 {
            continue;
        }
        let near = BooleanQuery::new(vec![
            (Occur::Must, of_kind(fields, kind)),
            (
                Occur::Must,
                Box::new(FuzzyTermQuery::new(term, distance_for(word).max(1), true)),
            ),
        ]);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for address in first_matches(searcher, &near, SUGGESTION_DOCS_MAX)? {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(text) = doc.get_first(fields.text).and_then(|value| value.as_str()) {
                for candidate in self::words(text) {
                    *counts.entry(candidate).or_default() += 1;
                }
            }
        }
        let best = counts
            .into_iter()
            .map(|(candidate, count)| {
                (
                    strsim::damerau_levenshtein(word, &candidate),
                    std::cmp::Reverse(count),
                    candidate,
                )
            })
            .filter(|(distance, _, _)| *distance > 0 && *distance <= 2)
            .min();
        if let Some((_, _, candidate)) = best {
            suggested[index] = candidate;
            changed = true;
        }
    }
    Ok(changed.then(|| suggested.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_and_typos_allowed_by_length() {
        assert_eq!(
            words("Le Dôme, CAFÉ-théâtre"),
            ["le", "dome", "cafe", "theatre"]
        );
        assert_eq!(
            ["abc", "abcd", "abcdef", "abcdefg"].map(distance_for),
            [0, 1, 1, 2]
        );
    }
}
