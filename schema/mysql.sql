-- Generated from metastore/models.py by scripts/generate_schema.py; do not edit.
-- dialect: mysql

CREATE TABLE project (
	id INTEGER NOT NULL AUTO_INCREMENT, 
	name VARCHAR(250) NOT NULL, 
	created DATETIME(6) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);

CREATE TABLE experiment (
	id INTEGER NOT NULL AUTO_INCREMENT, 
	project_id INTEGER NOT NULL, 
	name VARCHAR(250) NOT NULL, 
	description TEXT, 
	created DATETIME(6) NOT NULL, 
	last_number INTEGER NOT NULL, 
	deleted_at DATETIME(6), 
	PRIMARY KEY (id), 
	CONSTRAINT uq_experiment_name UNIQUE (project_id, name), 
	FOREIGN KEY(project_id) REFERENCES project (id)
);

CREATE INDEX ix_experiment_project_id ON experiment (project_id);

CREATE TABLE run (
	id VARCHAR(26) NOT NULL, 
	experiment_id INTEGER NOT NULL, 
	number INTEGER NOT NULL, 
	name VARCHAR(250), 
	parent_id VARCHAR(26), 
	status VARCHAR(16) NOT NULL, 
	started DATETIME(6) NOT NULL, 
	ended DATETIME(6), 
	user VARCHAR(250), 
	host VARCHAR(250), 
	pid INTEGER, 
	heartbeat DATETIME(6), 
	git_commit VARCHAR(64), 
	git_branch VARCHAR(250), 
	git_dirty BOOL, 
	command TEXT, 
	context TEXT, 
	source VARCHAR(32), 
	source_id VARCHAR(250), 
	deleted_at DATETIME(6), 
	PRIMARY KEY (id), 
	CONSTRAINT uq_run_number UNIQUE (experiment_id, number), 
	FOREIGN KEY(experiment_id) REFERENCES experiment (id), 
	FOREIGN KEY(parent_id) REFERENCES run (id)
);

CREATE INDEX ix_run_experiment_id ON run (experiment_id);

CREATE INDEX ix_run_name ON run (name);

CREATE INDEX ix_run_source ON run (source, source_id);

CREATE INDEX ix_run_started ON run (started);

CREATE INDEX ix_run_status ON run (status);

CREATE TABLE param (
	run_id VARCHAR(26) NOT NULL, 
	`key` VARCHAR(250) NOT NULL, 
	type VARCHAR(8) NOT NULL, 
	num DOUBLE, 
	text TEXT, 
	PRIMARY KEY (run_id, `key`), 
	FOREIGN KEY(run_id) REFERENCES run (id)
);

CREATE INDEX ix_param_key_num ON param (`key`, num);

CREATE TABLE metric (
	id INTEGER NOT NULL AUTO_INCREMENT, 
	run_id VARCHAR(26) NOT NULL, 
	`key` VARCHAR(250) NOT NULL, 
	step BIGINT NOT NULL, 
	timestamp DATETIME(6) NOT NULL, 
	value DOUBLE NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES run (id)
);

CREATE INDEX ix_metric_run_key_step ON metric (run_id, `key`, step);

CREATE TABLE metric_summary (
	run_id VARCHAR(26) NOT NULL, 
	`key` VARCHAR(250) NOT NULL, 
	last DOUBLE NOT NULL, 
	last_step BIGINT NOT NULL, 
	first DOUBLE NOT NULL, 
	min DOUBLE NOT NULL, 
	max DOUBLE NOT NULL, 
	count INTEGER NOT NULL, 
	PRIMARY KEY (run_id, `key`), 
	FOREIGN KEY(run_id) REFERENCES run (id)
);

CREATE INDEX ix_metric_summary_key_last ON metric_summary (`key`, last);

CREATE TABLE tag (
	entity_type VARCHAR(16) NOT NULL, 
	entity_id VARCHAR(26) NOT NULL, 
	`key` VARCHAR(250) NOT NULL, 
	value VARCHAR(500), 
	PRIMARY KEY (entity_type, entity_id, `key`)
);

CREATE INDEX ix_tag_key_value ON tag (`key`, value);

CREATE TABLE note (
	id INTEGER NOT NULL AUTO_INCREMENT, 
	run_id VARCHAR(26) NOT NULL, 
	time DATETIME(6) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	author VARCHAR(250), 
	text TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES run (id)
);

CREATE INDEX ix_note_run_id ON note (run_id);

CREATE TABLE asset (
	id INTEGER NOT NULL AUTO_INCREMENT, 
	project_id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	name VARCHAR(250) NOT NULL, 
	created DATETIME(6) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_asset_name UNIQUE (project_id, kind, name), 
	FOREIGN KEY(project_id) REFERENCES project (id)
);

CREATE INDEX ix_asset_kind ON asset (kind);

CREATE INDEX ix_asset_project_id ON asset (project_id);

CREATE TABLE asset_version (
	id VARCHAR(26) NOT NULL, 
	asset_id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	digest VARCHAR(80) NOT NULL, 
	size BIGINT, 
	uri TEXT NOT NULL, 
	media_type VARCHAR(128), 
	meta TEXT, 
	created DATETIME(6) NOT NULL, 
	created_by VARCHAR(26), 
	PRIMARY KEY (id), 
	CONSTRAINT uq_asset_version UNIQUE (asset_id, version), 
	CONSTRAINT uq_asset_digest UNIQUE (asset_id, digest), 
	FOREIGN KEY(asset_id) REFERENCES asset (id), 
	FOREIGN KEY(created_by) REFERENCES run (id)
);

CREATE INDEX ix_asset_version_asset_id ON asset_version (asset_id);

CREATE INDEX ix_asset_version_created_by ON asset_version (created_by);

CREATE INDEX ix_asset_version_digest ON asset_version (digest);

CREATE TABLE lineage_edge (
	id INTEGER NOT NULL AUTO_INCREMENT, 
	src_type VARCHAR(16) NOT NULL, 
	src_id VARCHAR(26) NOT NULL, 
	dst_type VARCHAR(16) NOT NULL, 
	dst_id VARCHAR(26) NOT NULL, 
	relation VARCHAR(16) NOT NULL, 
	`role` VARCHAR(64), 
	path TEXT, 
	created DATETIME(6) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_lineage_edge UNIQUE (src_type, src_id, dst_type, dst_id, relation)
);

CREATE INDEX ix_lineage_dst ON lineage_edge (dst_id, dst_type);

CREATE INDEX ix_lineage_src ON lineage_edge (src_id, src_type);

CREATE TABLE asset_alias (
	asset_id INTEGER NOT NULL, 
	alias VARCHAR(64) NOT NULL, 
	version_id VARCHAR(26) NOT NULL, 
	moved DATETIME(6) NOT NULL, 
	author VARCHAR(250), 
	note TEXT, 
	PRIMARY KEY (asset_id, alias), 
	FOREIGN KEY(asset_id) REFERENCES asset (id), 
	FOREIGN KEY(version_id) REFERENCES asset_version (id)
);

CREATE INDEX ix_asset_alias_version_id ON asset_alias (version_id);

CREATE TABLE alias_move (
	id INTEGER NOT NULL AUTO_INCREMENT, 
	asset_id INTEGER NOT NULL, 
	alias VARCHAR(64) NOT NULL, 
	version_id VARCHAR(26), 
	version INTEGER, 
	previous INTEGER, 
	time DATETIME(6) NOT NULL, 
	author VARCHAR(250), 
	note TEXT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(asset_id) REFERENCES asset (id)
);

CREATE INDEX ix_alias_move_asset_alias ON alias_move (asset_id, alias);

CREATE TABLE store_config (
	`key` VARCHAR(250) NOT NULL, 
	value TEXT NOT NULL, 
	updated DATETIME(6) NOT NULL, 
	PRIMARY KEY (`key`)
);

CREATE TABLE api_token (
	id INTEGER NOT NULL AUTO_INCREMENT, 
	name VARCHAR(250) NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	read_only BOOL NOT NULL, 
	created DATETIME(6) NOT NULL, 
	revoked_at DATETIME(6), 
	PRIMARY KEY (id), 
	UNIQUE (name), 
	UNIQUE (token_hash)
);

CREATE TABLE applied_request (
	`key` VARCHAR(64) NOT NULL, 
	route VARCHAR(64) NOT NULL, 
	applied DATETIME(6) NOT NULL, 
	response TEXT, 
	PRIMARY KEY (`key`)
);

CREATE INDEX ix_applied_request_applied ON applied_request (applied);
