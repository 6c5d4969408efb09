-- One database per service (each subgraph owns its data; no cross-database joins).
CREATE DATABASE auth;
CREATE DATABASE users;
CREATE DATABASE posts;
CREATE DATABASE comments;
CREATE DATABASE likes;
CREATE DATABASE notifications;
